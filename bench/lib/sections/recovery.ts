// Placeholder until this section is written.
import type { Section } from '../context.ts';

export const section: Section = {
  id: 'recovery',
  title: 'recovery',
  async run() {
    return { markdown: 'not yet measured', goals: [], commands: [], data: {} };
  },
};
