/**
 * Finding and ending VMM processes by pid, checked against /proc so that a
 * reused pid is never mistaken for a VM's VMM.
 *
 * @module
 */
import { processInfo, sendSignal } from "../util/procfs.ts";

/**
 * True when `pid` is alive and its command line mentions `marker` (the
 * VM's directory). Requires `--allow-run` for ps.
 */
export async function processMatches(
  pid: number,
  marker: string,
): Promise<boolean> {
  const info = await processInfo(pid);
  // A zombie has exited; only its parent's wait is missing.
  return info !== undefined && !info.state.startsWith("Z") &&
    info.args.includes(marker);
}

/**
 * Sends SIGTERM, waits up to `timeoutMs`, then SIGKILL, and waits for the
 * process to go away.
 */
export async function endProcess(
  pid: number,
  marker: string,
  timeoutMs = 5000,
): Promise<void> {
  if (!(await processMatches(pid, marker))) return;
  await sendSignal(pid, "TERM");
  if (await waitGone(pid, marker, timeoutMs)) return;
  await sendSignal(pid, "KILL");
  if (!(await waitGone(pid, marker, 5000))) {
    throw new Error(`Cannot end VMM process ${pid}: still alive after SIGKILL`);
  }
}

/** Polls until the process is gone; false when `timeoutMs` ran out. */
export async function waitGone(
  pid: number,
  marker: string,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await processMatches(pid, marker))) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !(await processMatches(pid, marker));
}
