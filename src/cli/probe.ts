/**
 * `banger internal probe-permissions`: tries what a role must not be able
 * to do and reports the outcome, so tests (and curious users) can see the
 * role's sandbox from inside.
 *
 * @module
 */
import type { Launcher } from "../roles.ts";

/** The outcome of each attempt: "allowed" or the error's name. */
export type ProbeReport = Record<string, string>;

/** Attempts to run programs, load libc and open a socket. */
export async function probePermissions(
  _launcher: Launcher,
): Promise<ProbeReport> {
  const report: ProbeReport = {};
  for (const program of ["ip", "qemu-system-x86_64", "nft", "ssh"]) {
    try {
      await new Deno.Command(program, {
        args: ["-V"],
        stdout: "null",
        stderr: "null",
      }).output();
      report[`run:${program}`] = "allowed";
    } catch (error) {
      report[`run:${program}`] = (error as Error).name;
    }
  }
  try {
    Deno.dlopen("libc.so.6", {}).close();
    report.ffi = "allowed";
  } catch (error) {
    report.ffi = (error as Error).name;
  }
  try {
    Deno.listen({ hostname: "127.0.0.1", port: 0 }).close();
    report.net = "allowed";
  } catch (error) {
    report.net = (error as Error).name;
  }
  return report;
}
