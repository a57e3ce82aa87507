/**
 * Commands that take several VMs: every reference is resolved once, the
 * VMs are de-duplicated, each distinct VM's operation runs concurrently,
 * and results come back in the order the references were given. Unknown
 * references fail on their own; the valid ones still proceed.
 *
 * @module
 */
import type { BatchResult } from "../protocol/daemon.ts";
import { RpcError } from "../protocol/envelope.ts";

/**
 * Runs `operation` once per distinct VM that `refs` name.
 *
 * `resolve` maps a reference to a VM id or throws (an {@linkcode RpcError}
 * keeps its code). `operation` may return a detail for people (e.g.
 * "already running"). Two references to one VM share its outcome.
 */
export async function runBatch(
  refs: readonly string[],
  resolve: (ref: string) => string,
  operation: (id: string) => Promise<string | void>,
): Promise<BatchResult> {
  const resolved = refs.map((ref) => {
    try {
      return { ref, id: resolve(ref) };
    } catch (error) {
      return { ref, error };
    }
  });
  const running = new Map<string, Promise<string | void>>();
  for (const r of resolved) {
    if (r.id !== undefined && !running.has(r.id)) {
      running.set(r.id, operation(r.id));
    }
  }
  // Settle everything before reporting so that no rejection is unhandled.
  const settled = new Map<string, PromiseSettledResult<string | void>>();
  await Promise.all(
    [...running].map(async ([id, promise]) => {
      settled.set(id, (await Promise.allSettled([promise]))[0]!);
    }),
  );
  return resolved.map((r) => {
    if (r.id === undefined) return failed(r.ref, r.error);
    const outcome = settled.get(r.id)!;
    if (outcome.status === "rejected") return failed(r.ref, outcome.reason);
    return {
      ref: r.ref,
      ok: true,
      ...(typeof outcome.value === "string" ? { detail: outcome.value } : {}),
    };
  });
}

function failed(ref: string, error: unknown): BatchResult[number] {
  return {
    ref,
    ok: false,
    error: {
      code: error instanceof RpcError ? error.code : "operation_failed",
      message: error instanceof Error ? error.message : String(error),
    },
  };
}
