/**
 * Tries what a role may or may not do and reports the outcome, so tests (and
 * curious users) can see a role's sandbox from inside:
 * `banger internal probe-permissions`, `banger daemon --probe-permissions`,
 * `banger helper --probe-permissions`.
 *
 * @module
 */

/** The outcome of each attempt: "allowed" or the error's name. */
export type ProbeReport = Record<string, string>;

/** Attempts to run programs, load libc and open a socket. */
export async function probePermissions(): Promise<ProbeReport> {
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
