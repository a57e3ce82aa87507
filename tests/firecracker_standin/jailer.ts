/**
 * A stand-in for Firecracker's `jailer`, so that banger's jailed launch
 * (helper staging, jailer argv, pid file, comm check, the long socket path
 * behind a symlink, cleanup) runs end to end on a host without the jailer.
 *
 * It checks the jailer's flags as the jailer does, creates the chroot
 * directory, copies the exec file into it, creates the device nodes the
 * jailer creates (/dev/kvm, /dev/net/tun, /dev/urandom), hands the chroot to
 * the uid/gid, becomes a session leader with stdio on /dev/null when asked
 * to `--daemonize`, writes `<exec file name>.pid` in the chroot and starts
 * the exec file as that uid/gid with the arguments the jailer adds.
 *
 * What it does not do: pivot_root/chroot, namespaces, cgroups, resource
 * limits. The exec file runs in place (the copy in the chroot is a shell
 * wrapper that cannot find its program there), told the chroot through
 * `BANGER_STANDIN_CHROOT` so that the stand-in firecracker resolves every
 * path under it, as a chrooted Firecracker would. The stand-in stays as
 * the parent of Firecracker (like the jailer's `--new-pid-ns` mode), so
 * the pid file names the child.
 *
 * @module
 */
import { basename, join } from "node:path";

const VERSION = "1.14.1";
const WITH_VALUE = new Set([
  "--id",
  "--exec-file",
  "--uid",
  "--gid",
  "--chroot-base-dir",
  "--netns",
  "--cgroup",
  "--cgroup-version",
  "--parent-cgroup",
  "--resource-limit",
]);
const WITHOUT_VALUE = new Set([
  "--daemonize",
  "--new-pid-ns",
  "--version",
  "--help",
]);
const NOT_EMULATED = new Set([
  "--netns",
  "--cgroup",
  "--parent-cgroup",
  "--resource-limit",
]);

function fail(message: string): never {
  console.error(`Jailer error: ${message}`);
  Deno.exit(1);
}

const args = [...Deno.args];
const separator = args.indexOf("--");
const own = separator < 0 ? args : args.slice(0, separator);
const forwarded = separator < 0 ? [] : args.slice(separator + 1);
const flags = new Map<string, string>();
for (let i = 0; i < own.length; i++) {
  const arg = own[i]!;
  if (WITHOUT_VALUE.has(arg)) flags.set(arg, "");
  else if (WITH_VALUE.has(arg)) {
    const value = own[++i];
    if (value === undefined) fail(`Argument '${arg}' requires a value.`);
    if (flags.has(arg)) fail(`Argument '${arg}' provided more than once.`);
    flags.set(arg, value);
  } else {
    fail(`Found argument '${arg}' which wasn't expected.`);
  }
}
if (flags.has("--version")) {
  console.log(`Jailer v${VERSION}`);
  Deno.exit(0);
}
for (const flag of NOT_EMULATED) {
  if (flags.has(flag)) fail(`the banger stand-in does not emulate ${flag}`);
}
for (const required of ["--id", "--exec-file", "--uid", "--gid"]) {
  if (!flags.has(required)) fail(`Missing mandatory argument '${required}'.`);
}
const id = flags.get("--id")!;
if (!/^[A-Za-z0-9-]{1,64}$/.test(id)) fail(`Invalid instance ID: ${id}`);
const execFile = flags.get("--exec-file")!;
if (!execFile.startsWith("/")) {
  fail(`Exec file path must be absolute: ${execFile}`);
}
const execName = basename(execFile);
if (!execName.includes("firecracker")) {
  fail(
    `Invalid filename. The filename of --exec-file option must contain "firecracker": ${execName}`,
  );
}
if (!(await Deno.stat(execFile).then((i) => i.isFile, () => false))) {
  fail(`Failed to canonicalize path ${execFile}: No such file or directory`);
}
const uid = flags.get("--uid")!;
const gid = flags.get("--gid")!;
if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) fail("Invalid uid or gid");
const base = flags.get("--chroot-base-dir") ?? "/srv/jailer";
if (!base.startsWith("/")) fail(`Chroot base dir must be absolute: ${base}`);

const root = join(base, execName, id, "root");
await Deno.mkdir(root, { recursive: true });
await Deno.copyFile(execFile, join(root, execName));
await Deno.chmod(join(root, execName), 0o755);
for (
  const [path, major, minor] of [
    ["dev/kvm", 10, 232],
    ["dev/net/tun", 10, 200],
    ["dev/urandom", 1, 9],
  ] as const
) {
  const node = join(root, path);
  await Deno.mkdir(join(node, ".."), { recursive: true });
  await Deno.remove(node).catch(() => {});
  const made = await new Deno.Command("mknod", {
    args: ["-m", "0600", node, "c", String(major), String(minor)],
  }).output();
  if (!made.success) fail(`Failed to create ${path}`);
  await Deno.chown(node, Number(uid), Number(gid));
}
await Deno.chown(root, Number(uid), Number(gid));

if (flags.has("--daemonize")) {
  const libc = Deno.dlopen("libc.so.6", {
    setsid: { parameters: [], result: "i32" },
    open: { parameters: ["buffer", "i32"], result: "i32" },
    dup2: { parameters: ["i32", "i32"], result: "i32" },
  }).symbols;
  if (libc.setsid() < 0) fail("Failed to daemonize: setsid");
  const devNull = libc.open(new TextEncoder().encode("/dev/null\0"), 2);
  for (const fd of [0, 1, 2]) libc.dup2(devNull, fd);
}

const now = BigInt(Date.now()) * 1000n;
const child = new Deno.Command("setpriv", {
  args: [
    "--reuid",
    uid,
    "--regid",
    gid,
    "--clear-groups",
    "--",
    execFile,
    "--id",
    id,
    "--start-time-us",
    String(now),
    "--start-time-cpu-us",
    "0",
    "--parent-cpu-time-us",
    "0",
    ...forwarded,
  ],
  cwd: root,
  env: { BANGER_STANDIN_CHROOT: root },
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
await Deno.writeTextFile(join(root, `${execName}.pid`), `${child.pid}\n`);
const status = await child.status;
Deno.exit(status.code);
