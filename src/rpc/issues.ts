/**
 * Zod validation failures in words, for error messages on both ends of a
 * socket: where in the message, what is wrong, and what was sent.
 *
 * @module
 */
import type { z } from "zod";

/** One readable line from a zod error: `path: message; …`. */
export function describeIssues(error: z.ZodError, input?: unknown): string {
  return error.issues.slice(0, 3).map((issue) => {
    const got = valueAt(input, issue.path);
    const shown = got === undefined ? "" : ` (got ${quoteValue(got)})`;
    return issue.path.length
      ? `${issue.path.join(".")}: ${issue.message}${shown}`
      : `${issue.message}${shown}`;
  }).join("; ");
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A value for an error message: short, on one line. */
function quoteValue(value: unknown): string {
  // JSON escapes control characters, so the text stays on one line.
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
