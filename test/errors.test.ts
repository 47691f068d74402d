import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ERRORS, UgcfsError, errorFromBody, isErrorCode } from '../src/base/errors.ts';
import { ERRORS_DOC, renderErrorsReference } from '../deploy/errors-reference.ts';

describe('error catalogue', () => {
  it('every code is UGCFS_ERR_* with a 4xx/5xx status and a description', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      expect(code).toMatch(/^UGCFS_ERR_[A-Z_]+$/);
      expect(spec.status).toBeGreaterThanOrEqual(400);
      expect(spec.status).toBeLessThan(600);
      expect(spec.description.length).toBeGreaterThan(10);
    }
  });
  it('renders the stable body shape and survives a hop', () => {
    const e = new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
    expect(e.toJSON()).toEqual({ error: { code: 'UGCFS_ERR_NOT_FOUND', message: 'no such file' } });
    const back = errorFromBody(404, JSON.parse(JSON.stringify(e)));
    expect(back.code).toBe('UGCFS_ERR_NOT_FOUND');
    expect(errorFromBody(502, 'junk').code).toBe('UGCFS_ERR_UPSTREAM');
    expect(isErrorCode('UGCFS_ERR_NOPE')).toBe(false);
  });
  it('docs/ERRORS.md lists the current catalogue (run `npm run docs:errors` after changing it)', () => {
    expect(readFileSync(ERRORS_DOC, 'utf8')).toBe(renderErrorsReference());
  });
});
