/**
 * Reading /proc and signalling processes from a role without
 * `--allow-all`: Deno refuses /proc reads and `Deno.kill` unless every
 * permission (or every program) is granted, so these go through `cat`,
 * `ps` and `kill`, which the daemon's permission list names.
 *
 * @module
 */
import { run } from "./exec.ts";

/** Reads a /proc file. Requires `--allow-run` for cat. */
export async function readProcFile(path: string): Promise<string> {
  if (!path.startsWith("/proc/")) {
    throw new RangeError(`Refusing to read "${path}": not under /proc`);
  }
  return (await run("cat", [path])).stdout;
}

/** A live process's state letter and command line, or undefined. */
export async function processInfo(
  pid: number,
): Promise<{ state: string; args: string } | undefined> {
  const result = await run("ps", ["-o", "stat=,args=", "-p", String(pid)], {
    okCodes: [0, 1],
  });
  const line = result.stdout.trim();
  if (result.code !== 0 || line === "") return undefined;
  const space = line.indexOf(" ");
  return { state: line.slice(0, space), args: line.slice(space + 1) };
}

/** Sends `signal` (e.g. "TERM") to `pid`; a missing process is no error. */
export async function sendSignal(pid: number, signal: string): Promise<void> {
  await run("kill", ["-s", signal, String(pid)], { okCodes: [0, 1] });
}

/**
 * Pids of live (non-zombie) processes whose command line contains
 * `marker`. Requires `--allow-run` for ps.
 */
export async function findProcesses(marker: string): Promise<number[]> {
  const result = await run("ps", ["-e", "-o", "pid=,stat=,args="]);
  const pids: number[] = [];
  for (const line of result.stdout.split("\n")) {
    const match = line.trim().match(/^(\d+)\s+(\S+)\s+(.*)$/);
    if (!match || match[2]!.startsWith("Z")) continue;
    if (match[3]!.includes(marker)) pids.push(Number(match[1]));
  }
  return pids;
}
