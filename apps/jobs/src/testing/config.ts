/** Job settings for tests: small, fast renders unless a test asks otherwise. */
import type { JobsConfig } from "../config.ts";

export function testJobsConfig(overrides: Partial<JobsConfig> = {}): { jobs: JobsConfig } {
  return {
    jobs: {
      maxPerUser: 2,
      concurrency: 2,
      frames: 6,
      frameSize: 64,
      progressIntervalMs: 250,
      maxAttempts: 2,
      lockMs: 30_000,
      resultTtlSeconds: 3600,
      mediaDir: null,
      ...overrides,
    },
  };
}
