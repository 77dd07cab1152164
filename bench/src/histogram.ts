/**
 * A latency histogram in microseconds: 10 µs buckets up to 100 ms, 1 ms buckets up to 120 s,
 * then one overflow bucket. Recording is an array increment; merging and percentiles are exact
 * to the bucket width. Serialised as sparse [bucket, count] pairs to cross process boundaries.
 */
const FINE_US = 10;
const FINE_LIMIT_US = 100_000;
const COARSE_US = 1_000;
const COARSE_LIMIT_US = 120_000_000;
const FINE_BUCKETS = FINE_LIMIT_US / FINE_US;
const BUCKETS = FINE_BUCKETS + (COARSE_LIMIT_US - FINE_LIMIT_US) / COARSE_US + 1;

export type SparseHistogram = [bucket: number, count: number][];

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  maxUs = 0;

  record(us: number): void {
    const v = Math.max(us, 0);
    let bucket: number;
    if (v < FINE_LIMIT_US) bucket = Math.floor(v / FINE_US);
    else if (v < COARSE_LIMIT_US)
      bucket = FINE_BUCKETS + Math.floor((v - FINE_LIMIT_US) / COARSE_US);
    else bucket = BUCKETS - 1;
    this.counts[bucket] = (this.counts[bucket] as number) + 1;
    this.count++;
    if (v > this.maxUs) this.maxUs = v;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.maxUs = 0;
  }

  toSparse(): { buckets: SparseHistogram; count: number; maxUs: number } {
    const buckets: SparseHistogram = [];
    for (let i = 0; i < BUCKETS; i++) {
      const c = this.counts[i] as number;
      if (c > 0) buckets.push([i, c]);
    }
    return { buckets, count: this.count, maxUs: this.maxUs };
  }

  merge(sparse: { buckets: SparseHistogram; count: number; maxUs: number }): void {
    for (const [bucket, c] of sparse.buckets) {
      this.counts[bucket] = (this.counts[bucket] as number) + c;
    }
    this.count += sparse.count;
    if (sparse.maxUs > this.maxUs) this.maxUs = sparse.maxUs;
  }

  /** The value (µs, upper edge of its bucket) below which `p` (0..1) of the samples fall. */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil(p * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return Math.min(upperEdge(i), this.maxUs);
    }
    return this.maxUs;
  }
}

function upperEdge(bucket: number): number {
  if (bucket < FINE_BUCKETS) return (bucket + 1) * FINE_US;
  if (bucket < BUCKETS - 1) return FINE_LIMIT_US + (bucket - FINE_BUCKETS + 1) * COARSE_US;
  return Number.POSITIVE_INFINITY;
}
