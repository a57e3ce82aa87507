/**
 * The few assertions the integration tests use (JSR, home of @std/assert,
 * is not reachable from this project's build hosts).
 *
 * @module
 */
import { inspect, isDeepStrictEqual } from "node:util";

/** Throws unless `actual` deeply equals `expected`. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new Error(
      `${msg ?? "Values differ"}:\n  actual:   ${
        inspect(actual, { depth: 6 })
      }\n  expected: ${inspect(expected, { depth: 6 })}`,
    );
  }
}

/** Throws when `actual` deeply equals `expected`. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (isDeepStrictEqual(actual, expected)) {
    throw new Error(msg ?? "Values are equal but should differ");
  }
}

/** Throws unless `condition` holds. */
export function assert(
  condition: unknown,
  msg = "Assertion failed",
): asserts condition {
  if (!condition) throw new Error(msg);
}
