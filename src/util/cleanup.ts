/**
 * Cleanup that runs every step even when one fails, and reports the
 * failures together: a VM that cannot lose its tap must still lose its VMM.
 *
 * @module
 */

/** One named cleanup (or undo) step. */
export interface CleanupStep {
  /** What the step does, as the start of an error sentence. */
  what: string;
  run: () => Promise<unknown>;
}

/**
 * Runs every step in order, whatever the earlier ones did, and returns one
 * `"what: why"` line per failed step (empty when all passed).
 */
export async function runAll(steps: readonly CleanupStep[]): Promise<string[]> {
  const failures: string[] = [];
  for (const step of steps) {
    try {
      await step.run();
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      failures.push(`${step.what}: ${why}`);
    }
  }
  return failures;
}

/**
 * Builds the error for an operation whose cleanup failed: the action first,
 * then every failed step joined with "; ".
 *
 * @example
 * ```ts
 * joinFailures('Cannot stop VM "calm-otter"', ["delete tap: busy"]);
 * // Error('Cannot stop VM "calm-otter": delete tap: busy')
 * ```
 */
export function joinFailures(action: string, failures: string[]): Error {
  return new Error(`${action}: ${failures.join("; ")}`);
}
