// Golden bytes for the needle batch frame v1 (dataserver/README.md, "Batch write frame"): the
// wire format of coalesced writes. A change here is a protocol change and needs a new magic.
import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { isUgcfsError } from '../../src/base/errors.ts';
import { checkedCrc, decodeNeedleBatch, encodeNeedleBatch, setFramedUploadTime, MAX_BATCH_RECORDS, type BatchRecord } from '../../src/wire/needle-batch.ts';

const RECORD: BatchRecord = { fid: '7,0102deadbeef', mime: 'image/png', owner: 'u9', uploadTime: 1700000000000, crc: crc32c('hello'), data: Buffer.from('hello') };

const GOLDEN =
  '55474231' + // magic "UGB1"
  '00000001' + // record count
  '000e' + // fid length 14
  '09' + // mime length 9
  '02' + // owner length 2
  '00000005' + // data size
  '9a71bb4c' + // CRC32-C of the data
  '0000018b' + // upload time ms, high 32 bits
  'cfe56800' + // upload time ms, low 32 bits
  Buffer.from('7,0102deadbeef').toString('hex') +
  Buffer.from('image/png').toString('hex') +
  Buffer.from('u9').toString('hex') +
  Buffer.from('hello').toString('hex');

function frame(records: BatchRecord[]): Buffer {
  return Buffer.concat(encodeNeedleBatch(records));
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isUgcfsError(err)) return `${err.code}: ${err.message}`;
    throw err;
  }
  return 'accepted';
}

describe('needle batch frame v1', () => {
  it('encodes a record byte for byte, without copying the data', () => {
    expect(crc32c('hello')).toBe(0x9a71bb4c);
    const parts = encodeNeedleBatch([RECORD]);
    expect(parts[2]).toBe(RECORD.data);
    expect(Buffer.concat(parts).toString('hex')).toBe(GOLDEN);
  });

  it('decodes the golden frame, data as a view into the body', () => {
    const body = Buffer.from(GOLDEN, 'hex');
    const [r, ...rest] = decodeNeedleBatch(body);
    expect(rest).toEqual([]);
    expect(r).toMatchObject({ fid: RECORD.fid, mime: RECORD.mime, owner: RECORD.owner, uploadTime: RECORD.uploadTime, crc: RECORD.crc, offset: 8 });
    expect(r!.data.toString()).toBe('hello');
    expect(r!.data.buffer).toBe(body.buffer);
    expect(checkedCrc(r!)).toBe(RECORD.crc);
  });

  it('round-trips any records', () => {
    const rec = fc.record({
      fid: fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
      mime: fc.constantFrom('image/jpeg', 'application/octet-stream', ''),
      owner: fc.string({ maxLength: 30 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'y')),
      uploadTime: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      data: fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    });
    fc.assert(
      fc.property(fc.array(rec, { minLength: 1, maxLength: 12 }), (rs) => {
        const records = rs.map((r) => ({ ...r, crc: crc32c(r.data) }));
        const back = decodeNeedleBatch(frame(records));
        expect(back.map(({ offset: _o, data, ...r }) => ({ ...r, data: Buffer.from(data) }))).toEqual(records);
      }),
    );
  });

  it('sets an upload time in place, which the frame then carries', () => {
    const body = frame([{ ...RECORD, uploadTime: 0 }, { ...RECORD, fid: '7,0203deadbeef', uploadTime: 0 }]);
    const records = decodeNeedleBatch(body);
    setFramedUploadTime(body, records[1]!, 1_763_700_000_123);
    const again = decodeNeedleBatch(body);
    expect(again.map((r) => r.uploadTime)).toEqual([0, 1_763_700_000_123]);
    expect(records[1]!.uploadTime).toBe(1_763_700_000_123);
  });

  it('refuses a malformed frame whole, with UGCFS_ERR_BAD_REQUEST', () => {
    const good = Buffer.from(GOLDEN, 'hex');
    expect(refusal(() => decodeNeedleBatch(Buffer.from('UGN1\0\0\0\x01')))).toMatch(/^UGCFS_ERR_BAD_REQUEST: .*UGB1/);
    expect(refusal(() => decodeNeedleBatch(good.subarray(0, good.length - 1)))).toMatch(/^UGCFS_ERR_BAD_REQUEST: .*record 0 is cut short/);
    expect(refusal(() => decodeNeedleBatch(Buffer.concat([good, Buffer.from([0])])))).toMatch(/^UGCFS_ERR_BAD_REQUEST: .*1 bytes follow/);
    const none = Buffer.from(good.subarray(0, 8));
    none.writeUInt32BE(0, 4);
    expect(refusal(() => decodeNeedleBatch(none))).toMatch(/^UGCFS_ERR_BAD_REQUEST: .*0 records/);
    const many = Buffer.from(good);
    many.writeUInt32BE(MAX_BATCH_RECORDS + 1, 4);
    expect(refusal(() => decodeNeedleBatch(many))).toMatch(/^UGCFS_ERR_BAD_REQUEST: .*1025 records/);
  });

  it('leaves a damaged record to the receiver: the frame decodes, its CRC check fails', () => {
    const body = frame([RECORD]);
    body.writeUInt8(body.at(-1)! ^ 0xff, body.length - 1);
    const [r] = decodeNeedleBatch(body);
    expect(checkedCrc(r!)).toBeUndefined();
  });
});
