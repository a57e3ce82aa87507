/**
 * Host-side usage of a VMM process, read through `ps` (Deno cannot read
 * /proc without every permission).
 *
 * @module
 */
import { run } from "../util/exec.ts";

/** CPU, memory and age of one process. */
export interface ProcessUsage {
  /** Percent of one CPU averaged over the process's life (ps's %cpu). */
  cpuPercent: number;
  rssMib: number;
  uptimeSeconds: number;
}

/** Parses `ps -o %cpu=,rss=,etimes=` output; undefined when empty. */
export function parsePsUsage(text: string): ProcessUsage | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length < 3) return undefined;
  const [cpu, rssKib, elapsed] = fields.map(Number) as [number, number, number];
  if (![cpu, rssKib, elapsed].every(Number.isFinite)) return undefined;
  return {
    cpuPercent: cpu,
    rssMib: Math.round(rssKib / 1024 * 10) / 10,
    uptimeSeconds: elapsed,
  };
}

/** The usage of `pid`, or undefined when it is gone. Requires run: ps. */
export async function vmmUsage(pid: number): Promise<ProcessUsage | undefined> {
  const result = await run("ps", [
    "-o",
    "%cpu=,rss=,etimes=",
    "-p",
    String(pid),
  ], {
    okCodes: [0, 1],
  });
  return result.code === 0 ? parsePsUsage(result.stdout) : undefined;
}
