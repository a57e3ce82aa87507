/**
 * A stand-in for the `firecracker` binary, for hosts without Firecracker
 * (or without usable KVM). It is meant to be at least as strict as the
 * real program:
 *
 * - it takes Firecracker's command-line flags and refuses unknown ones;
 * - it serves Firecracker's HTTP API on `--api-sock`, refusing a socket
 *   path that already exists, as Firecracker does;
 * - every request is checked against Firecracker's published API schema
 *   with unknown fields refused (./schema.ts), and against the pre-boot /
 *   post-boot rules: configuration after `InstanceStart` is refused with a
 *   `fault_message`;
 * - files are opened when they are configured, as Firecracker opens them:
 *   a missing kernel, initrd, drive, log or metrics file, or a tap that
 *   does not exist, is refused at once;
 * - on `InstanceStart` it boots the configured kernel, initrd, drives and
 *   tap with `qemu-system-x86_64 -M microvm` (./qemu_map.ts), and exits
 *   when the guest powers off or reboots, as Firecracker does.
 *
 * Its process name (`/proc/<pid>/comm`) is `firecracker`, so pid checks
 * treat it like the real program. QEMU runs as its child with a
 * parent-death signal, so killing the stand-in ends the guest too.
 *
 * Started by the stand-in jailer (./jailer.ts), it resolves every path
 * under the chroot named by `BANGER_STANDIN_CHROOT`, as a chrooted
 * Firecracker sees them, and binds its socket relative to it.
 *
 * What it does not emulate: seccomp, snapshots, balloon,
 * vsock, MMDS, `--config-file` and `--no-api` (refused with a message).
 *
 * @module
 */
import { join } from "node:path";
import { detectAccel, hostTscKhz } from "../../src/vmm/qemu.ts";
import { ApiSchema } from "./schema.ts";
import { type MachineState, qemuArgv } from "./qemu_map.ts";

/** The Firecracker version the stand-in answers as. */
export const STANDIN_VERSION = "1.14.1";
/**
 * The longest kernel command line Firecracker takes on x86_64, with its
 * terminating NUL (`CMDLINE_MAX_SIZE`).
 */
const CMDLINE_MAX_SIZE = 2048;

/** Firecracker's exit status for a command-line error. */
const EXIT_ARG_PARSING = 153;
/** How long QEMU must survive for `InstanceStart` to count as started. */
const START_GRACE_MS = 1500;

const FLAGS_WITH_VALUE = new Set([
  "--api-sock",
  "--id",
  "--seccomp-filter",
  "--start-time-us",
  "--start-time-cpu-us",
  "--parent-cpu-time-us",
  "--config-file",
  "--log-path",
  "--level",
  "--module",
  "--metrics-path",
  "--http-api-max-payload-size",
  "--mmds-size-limit",
  "--metadata",
  "--describe-snapshot",
]);
const FLAGS_WITHOUT_VALUE = new Set([
  "--no-seccomp",
  "--no-api",
  "--show-level",
  "--show-log-origin",
  "--boot-timer",
  "--enable-pci",
  "--version",
  "--help",
]);
const UNSUPPORTED = new Set([
  "--config-file",
  "--no-api",
  "--describe-snapshot",
  "--metadata",
]);

/** Parses Firecracker's flags; exits like Firecracker on a bad one. */
function parseFlags(args: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (FLAGS_WITHOUT_VALUE.has(arg)) {
      flags.set(arg, "");
    } else if (FLAGS_WITH_VALUE.has(arg)) {
      const value = args[++i];
      if (value === undefined) {
        fail(`Arguments parsing error: Argument '${arg}' requires a value.`);
      }
      flags.set(arg, value);
    } else {
      fail(
        `Arguments parsing error: Found argument '${arg}' which wasn't expected, or isn't valid in this context.`,
      );
    }
  }
  return flags;
}

function fail(message: string, code = EXIT_ARG_PARSING): never {
  console.error(message);
  Deno.exit(code);
}

const flags = parseFlags(Deno.args);
if (flags.has("--version")) {
  console.log(
    `Firecracker v${STANDIN_VERSION}\n\nSupported snapshot data format versions: v1.0.0, v2.0.0, v3.0.0, v4.0.0, v5.0.0, v6.0.0, v7.0.0, v8.0.0`,
  );
  Deno.exit(0);
}
if (flags.has("--help")) {
  console.log(
    `firecracker (banger stand-in) v${STANDIN_VERSION}\nFlags: ${
      [...FLAGS_WITH_VALUE, ...FLAGS_WITHOUT_VALUE].join(" ")
    }`,
  );
  Deno.exit(0);
}
for (const flag of UNSUPPORTED) {
  if (flags.has(flag)) {
    fail(`The banger stand-in does not implement ${flag}`, 1);
  }
}
const instanceId = flags.get("--id") ?? "anonymous-instance";
if (!/^[A-Za-z0-9-]{1,64}$/.test(instanceId)) {
  fail(`Invalid instance ID: ${instanceId}`, 1);
}
/** Set by the stand-in jailer: the directory a jailed Firecracker sees as /. */
const chroot = Deno.env.get("BANGER_STANDIN_CHROOT");
/** A path as a chrooted Firecracker would resolve it. */
function hostPath(path: string): string {
  return chroot && path.startsWith("/") ? join(chroot, path) : path;
}
let apiSock = flags.get("--api-sock") ?? "/run/firecracker.socket";
if (chroot) {
  // Relative to the chroot, the socket path stays as short as inside one.
  Deno.chdir(chroot);
  if (apiSock.startsWith("/")) apiSock = `.${apiSock}`;
}
if (await exists(apiSock)) {
  fail(
    `Failed to open the API socket at: ${apiSock}. Check that it is not already used.`,
    1,
  );
}

// Pid checks read /proc/<pid>/comm; answer to the real program's name.
await Deno.writeTextFile("/proc/self/comm", "firecracker").catch(() => {});

const schema = ApiSchema.load();
const POST_BOOT_REFUSAL =
  "The requested operation is not supported after starting the microVM.";
const PRE_BOOT_REFUSAL =
  "The requested operation is not supported before starting the microVM.";
/** Configuration Firecracker accepts only before boot beyond the schema's. */
const ALSO_PRE_BOOT = new Set(["PUT /logger", "PUT /metrics", "PUT /serial"]);
/** Routes the stand-in implements; the others are refused, never ignored. */
const IMPLEMENTED = new Set([
  "GET /",
  "GET /version",
  "GET /machine-config",
  "GET /vm/config",
  "PUT /machine-config",
  "PATCH /machine-config",
  "PUT /boot-source",
  "PUT /drives/{drive_id}",
  "PUT /network-interfaces/{iface_id}",
  "PUT /logger",
  "PUT /metrics",
  "PUT /serial",
  "PUT /actions",
]);

type Drive = MachineState["drives"][number];
type Net = MachineState["nets"][number];
const state = {
  started: false,
  machine: { vcpu_count: 1, mem_size_mib: 128, smt: false } as MachineState[
    "machine"
  ],
  boot: undefined as MachineState["boot"] | undefined,
  drives: new Map<string, Drive>(),
  nets: new Map<string, Net>(),
  logPath: (flags.get("--log-path") ?? undefined) as string | undefined,
  metricsPath: (flags.get("--metrics-path") ?? undefined) as string | undefined,
  serialOutPath: undefined as string | undefined,
};
let qemu: Deno.ChildProcess | undefined;

/** An API refusal with Firecracker's body shape. */
class Fault extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

function log(message: string): void {
  if (!state.logPath) return;
  const line = `${
    new Date().toISOString()
  } [${instanceId}:fc_api] ${message}\n`;
  try {
    Deno.writeTextFileSync(state.logPath, line, { append: true });
  } catch {
    // Firecracker drops log lines it cannot write.
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when `name` is a tap in this network namespace (/sys may belong to
 * another namespace, so ip is asked).
 */
async function isTap(name: string): Promise<boolean> {
  const out = await new Deno.Command("ip", {
    args: ["-d", "-j", "link", "show", "dev", name],
    stdout: "piped",
    stderr: "null",
  }).output();
  if (!out.success) return false;
  const links = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    linkinfo?: { info_kind?: string; info_data?: { type?: string } };
  }[];
  const info = links[0]?.linkinfo;
  return info?.info_kind === "tun" && info.info_data?.type === "tap";
}

/** The uid a tap was created for (-1: anyone), as `ip -d` reports it. */
async function tapOwner(name: string): Promise<number> {
  const out = await new Deno.Command("ip", {
    args: ["-d", "-j", "link", "show", "dev", name],
    stdout: "piped",
    stderr: "null",
  }).output();
  const links = JSON.parse(new TextDecoder().decode(out.stdout) || "[]") as {
    linkinfo?: { info_data?: { user?: string | number } };
  }[];
  const user = links[0]?.linkinfo?.info_data?.user;
  if (user === undefined) return -1;
  if (typeof user === "number") return user;
  const byName = await new Deno.Command("id", { args: ["-u", user] })
    .output();
  return byName.success
    ? Number(new TextDecoder().decode(byName.stdout).trim())
    : -1;
}

/** Opens `path` the way Firecracker does when a resource is configured. */
async function openCheck(
  path: string,
  write: boolean,
  what: string,
): Promise<void> {
  try {
    const file = await Deno.open(hostPath(path), { read: true, write });
    file.close();
  } catch (error) {
    throw new Fault(`${what}: ${(error as Error).message}`);
  }
}

async function handle(method: string, path: string, body: unknown) {
  const checked = schema.validateRequest(method, path, body);
  if (!checked.ok) throw new Fault(checked.message, checked.status);
  const key = `${method} ${checked.route.template}`;
  const preBoot = checked.route.phase === "pre-boot" || ALSO_PRE_BOOT.has(key);
  if (state.started && preBoot) throw new Fault(POST_BOOT_REFUSAL);
  if (!state.started && checked.route.phase === "post-boot") {
    throw new Fault(PRE_BOOT_REFUSAL);
  }
  if (!IMPLEMENTED.has(key)) {
    throw new Fault(`The banger stand-in does not implement ${key}`);
  }
  const b = body as Record<string, unknown>;
  switch (key) {
    case "GET /":
      return {
        app_name: "Firecracker",
        id: instanceId,
        state: state.started ? "Running" : "Not started",
        vmm_version: STANDIN_VERSION,
      };
    case "GET /version":
      return { firecracker_version: STANDIN_VERSION };
    case "GET /machine-config":
      return state.machine;
    case "GET /vm/config":
      return {
        "boot-source": state.boot,
        "machine-config": state.machine,
        drives: [...state.drives.values()],
        "network-interfaces": [...state.nets.values()],
      };
    case "PUT /machine-config":
    case "PATCH /machine-config": {
      const next = {
        ...(key.startsWith("PATCH") ? state.machine : {}),
        ...b,
      } as MachineState["machine"];
      if (next.smt && next.vcpu_count > 1 && next.vcpu_count % 2 !== 0) {
        throw new Fault(
          "The number of vCPUs must be 1 or an even number when SMT is enabled.",
        );
      }
      if (next.mem_size_mib < 1) throw new Fault("The memory size is invalid.");
      state.machine = next;
      return undefined;
    }
    case "PUT /boot-source": {
      const boot = b as MachineState["boot"];
      const argsBytes = new TextEncoder().encode(boot.boot_args ?? "").length;
      if (argsBytes >= CMDLINE_MAX_SIZE) {
        throw new Fault(
          `The kernel command line is invalid: ${argsBytes} bytes, at most ${
            CMDLINE_MAX_SIZE - 1
          } fit`,
        );
      }
      await openCheck(
        boot.kernel_image_path,
        false,
        "The kernel file cannot be opened",
      );
      if (boot.initrd_path) {
        await openCheck(
          boot.initrd_path,
          false,
          "The initrd file cannot be opened",
        );
      }
      state.boot = boot;
      return undefined;
    }
    case "PUT /drives/{drive_id}": {
      const drive = b as unknown as Drive & { socket?: string };
      if (!/^[A-Za-z0-9_]{1,64}$/.test(drive.drive_id)) {
        throw new Fault(`Invalid drive ID: ${drive.drive_id}`);
      }
      if (drive.socket !== undefined) {
        throw new Fault(
          "The banger stand-in does not implement vhost-user-block drives",
        );
      }
      if (
        drive.path_on_host === undefined || drive.is_read_only === undefined
      ) {
        throw new Fault(
          "Unable to create the virtio block device: path_on_host and is_read_only are required",
        );
      }
      const otherRoot = [...state.drives.values()].find((d) =>
        d.is_root_device && d.drive_id !== drive.drive_id
      );
      if (drive.is_root_device && otherRoot) {
        throw new Fault("A root block device already exists!");
      }
      await openCheck(
        drive.path_on_host,
        !drive.is_read_only,
        "Unable to create the virtio block device",
      );
      state.drives.set(drive.drive_id, drive);
      return undefined;
    }
    case "PUT /network-interfaces/{iface_id}": {
      const net = b as unknown as Net;
      if (net.host_dev_name.length > 15) {
        throw new Fault(
          `Could not create the network device: the tap name "${net.host_dev_name}" is longer than 15 characters`,
        );
      }
      if (
        net.guest_mac !== undefined &&
        !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(net.guest_mac)
      ) {
        throw new Fault(`Invalid MAC address: ${net.guest_mac}`);
      }
      for (const other of state.nets.values()) {
        if (
          other.iface_id !== net.iface_id &&
          other.host_dev_name === net.host_dev_name
        ) {
          throw new Fault(
            `The host device name ${net.host_dev_name} is already in use.`,
          );
        }
      }
      if (!(await isTap(net.host_dev_name))) {
        throw new Fault(
          `Could not create the network device: Open tap device failed: ${net.host_dev_name} is not a tap device`,
        );
      }
      // The kernel lets an unprivileged process attach only to a tap it
      // owns (TUNSETIFF); a jailed Firecracker runs as the owner.
      const owner = await tapOwner(net.host_dev_name);
      const uid = Deno.uid() ?? 0;
      if (uid !== 0 && owner !== -1 && owner !== uid) {
        throw new Fault(
          `Could not create the network device: Open tap device failed: ${net.host_dev_name} belongs to uid ${owner}, not ${uid}: Operation not permitted`,
        );
      }
      state.nets.set(net.iface_id, net);
      return undefined;
    }
    case "PUT /logger": {
      const path = b.log_path as string | undefined;
      if (path !== undefined) {
        await openCheck(path, true, "Failed to open target file");
        state.logPath = hostPath(path);
      }
      log(`Running Firecracker v${STANDIN_VERSION} (banger stand-in)`);
      return undefined;
    }
    case "PUT /metrics": {
      if (state.metricsPath) {
        throw new Fault("Reinitialization of metrics not allowed.");
      }
      await openCheck(
        b.metrics_path as string,
        true,
        "Failed to open target file",
      );
      state.metricsPath = hostPath(b.metrics_path as string);
      return undefined;
    }
    case "PUT /serial": {
      const path = b.serial_out_path as string | undefined;
      state.serialOutPath = path === undefined ? undefined : hostPath(path);
      return undefined;
    }
    case "PUT /actions": {
      const action = b.action_type as string;
      if (action === "InstanceStart") {
        if (state.started) throw new Fault(POST_BOOT_REFUSAL);
        await start();
      } else if (action === "FlushMetrics") {
        flushMetrics();
      } else {
        // banger stops guests over ssh; a Ctrl-Alt-Del from it is a bug.
        throw new Fault(`The banger stand-in does not emulate ${action}`);
      }
      return undefined;
    }
  }
  throw new Fault(`The banger stand-in does not implement ${key}`);
}

function flushMetrics(): void {
  if (!state.metricsPath) return;
  const line = JSON.stringify({
    utc_timestamp_ms: Date.now(),
    api_server: { process_startup_time_us: 0 },
    vmm: { started: state.started },
  }) + "\n";
  Deno.writeTextFileSync(state.metricsPath, line, { append: true });
}

/** The QMP socket's directory while QEMU runs. */
let qmpDir: string | undefined;

async function start(): Promise<void> {
  if (!state.boot) {
    throw new Fault("Cannot start microvm without kernel configuration.");
  }
  const machine: MachineState = {
    machine: state.machine,
    boot: {
      ...state.boot,
      kernel_image_path: hostPath(state.boot.kernel_image_path),
      ...(state.boot.initrd_path
        ? { initrd_path: hostPath(state.boot.initrd_path) }
        : {}),
    },
    drives: [...state.drives.values()].map((d) => ({
      ...d,
      path_on_host: hostPath(d.path_on_host),
    })),
    nets: [...state.nets.values()],
    serialOutPath: state.serialOutPath,
    enablePci: flags.has("--enable-pci"),
  };
  const accel = await detectAccel("auto");
  // A QMP socket of its own (short: the API socket's path may be long) to
  // tell a guest reboot from a power-off; see watchGuestEnd.
  qmpDir = await Deno.makeTempDir({ prefix: "fc-standin-" });
  const qmpSocket = join(qmpDir, "qmp.sock");
  const argv = [
    ...qemuArgv(machine, { accel, tscKhz: await hostTscKhz() }),
    "-qmp",
    `unix:${qmpSocket},server=on,wait=off`,
  ];
  log(`Starting QEMU: ${argv.join(" ")}`);
  // setpriv's parent-death signal ends QEMU whenever this process dies,
  // even by SIGKILL, so the pair behaves like Firecracker's one process.
  const child = new Deno.Command("setpriv", {
    args: ["--pdeathsig", "KILL", "--", "qemu-system-x86_64", ...argv],
    stdin: "null",
    stdout: "inherit",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  const collect = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      const text = decoder.decode(chunk);
      stderr += text;
      log(`qemu: ${text.trimEnd()}`);
    }
  })();
  const early = await Promise.race([
    child.status,
    new Promise<undefined>((r) =>
      setTimeout(() => r(undefined), START_GRACE_MS)
    ),
  ]);
  if (early !== undefined) {
    await collect;
    throw new Fault(
      `Failed to start microVM: the VMM exited with ${early.code}: ${stderr.trim()}`,
    );
  }
  qemu = child;
  state.started = true;
  flushMetrics();
  log("Successfully started microvm that was configured from one single json");
  void watchGuestEnd(qmpSocket).catch((error) =>
    log(`qmp: ${(error as Error).message}`)
  );
  child.status.then(async (status) => {
    log(`Guest stopped (VMM exit status ${status.code}); exiting`);
    await Deno.remove(qmpDir!, { recursive: true }).catch(() => {});
    Deno.exit(0);
  });
}

/**
 * Firecracker on x86 exits when its guest resets (reboot=k) and keeps
 * running, vCPUs halted, when it powers off. QEMU runs with -no-reboot and
 * -no-shutdown, so both end as a SHUTDOWN event and a paused machine; the
 * event's reason tells them apart, and only a reset ends QEMU (and with it
 * this process).
 */
async function watchGuestEnd(socket: string): Promise<void> {
  let conn: Deno.UnixConn | undefined;
  for (let i = 0; i < 100 && !conn; i++) {
    conn = await Deno.connect({ transport: "unix", path: socket }).catch(
      () => undefined,
    );
    if (!conn) await new Promise((r) => setTimeout(r, 50));
  }
  if (!conn) throw new Error(`cannot connect to "${socket}"`);
  const send = (execute: string) =>
    conn.write(new TextEncoder().encode(JSON.stringify({ execute }) + "\n"));
  await send("qmp_capabilities");
  let buffered = "";
  for await (
    const chunk of conn.readable.pipeThrough(new TextDecoderStream())
  ) {
    buffered += chunk;
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      const message = JSON.parse(line) as {
        event?: string;
        data?: { reason?: string };
      };
      if (message.event !== "SHUTDOWN") continue;
      if (message.data?.reason === "guest-reset") {
        log("Guest reset: Firecracker exits");
        await send("quit");
      } else {
        log(`Guest ${message.data?.reason ?? "shutdown"}: vCPUs halted`);
      }
    }
  }
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(signal, () => {
    try {
      qemu?.kill("SIGKILL");
    } catch {
      // Already gone.
    }
    if (qmpDir) Deno.removeSync(qmpDir, { recursive: true });
    Deno.exit(128 + (signal === "SIGTERM" ? 15 : 2));
  });
}

Deno.serve({ path: apiSock, onListen() {} }, async (request) => {
  const url = new URL(request.url);
  const text = await request.text();
  let body: unknown;
  try {
    body = text.trim() === "" ? undefined : JSON.parse(text);
  } catch (error) {
    return fault(
      new Fault(
        `An error occurred when deserializing the json body of a request: ${
          (error as Error).message
        }.`,
      ),
    );
  }
  try {
    const result = await handle(request.method, url.pathname, body);
    log(`The API server received a ${request.method} ${url.pathname}: ok`);
    return result === undefined
      ? new Response(null, { status: 204 })
      : Response.json(result);
  } catch (error) {
    const refusal = error instanceof Fault
      ? error
      : new Fault(String(error), 500);
    log(
      `The API server received a ${request.method} ${url.pathname}: ${refusal.message}`,
    );
    return fault(refusal);
  }
});

function fault(error: Fault): Response {
  return Response.json({ fault_message: error.message }, {
    status: error.status,
  });
}
