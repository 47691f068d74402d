// nginx cannot listen on port 0 and report the port, so the bench asks the kernel for a
// free one and hands it over (the same helper the tests use).
export { freePort } from '../../test/helpers/ready-process.ts';
