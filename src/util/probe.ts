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
  const programs: [string, string][] = [
    ...["ip", "qemu-system-x86_64", "nft", "ssh", "setsid", "sh"].map((
      p,
    ): [string, string] => [p, p]),
    // Itself: under `deno run` that is deno, which runs anything.
    ["self", Deno.execPath()],
  ];
  for (const [label, program] of programs) {
    try {
      await new Deno.Command(program, {
        args: ["-V"],
        stdout: "null",
        stderr: "null",
      }).output();
      report[`run:${label}`] = "allowed";
    } catch (error) {
      report[`run:${label}`] = (error as Error).name;
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
