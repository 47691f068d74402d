// Deterministic file contents per key, so a verifier can rebuild the exact bytes a crashed
// writer acknowledged without the writer having to save them anywhere.
export function recordData(key: bigint, maxSize = 30_000): Buffer {
  const k = Number(key % 1_000_000_007n);
  const size = 1 + ((k * 7919) % maxSize);
  const b = Buffer.allocUnsafe(size);
  let x = (k ^ 0x9e3779b9) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}
