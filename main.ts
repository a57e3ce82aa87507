/**
 * banger's single entry point: the CLI, `banger daemon` (owner daemon) or
 * `banger helper` (root helper), chosen by subcommand.
 *
 * This thread holds the union of the roles' permissions and does nothing
 * but start the role in a worker with only that role's permissions (see
 * src/roles.ts) and exit with the status the worker reports.
 *
 * @module
 */
import { loadConfig } from "./src/config.ts";
import { resolvePaths } from "./src/paths.ts";
import {
  type Launcher,
  outputPaths,
  type RoleConfig,
  roleOf,
  rolePermissions,
} from "./src/roles.ts";
import { which } from "./src/util/exec.ts";
import { parseCidr } from "./src/util/ipv4.ts";
import type {
  FromWorker,
  RoleStart,
  Service,
  SpawnReply,
} from "./src/role_worker.ts";

const args = [...Deno.args];
const role = roleOf(args);
const paths = resolvePaths();
const launcher = currentLauncher();
const worker = new Worker(new URL("./src/role_worker.ts", import.meta.url), {
  type: "module",
  deno: {
    permissions: rolePermissions(
      role,
      paths,
      await roleConfig(paths.configFile),
      outputPaths(args),
    ),
  },
});
worker.onmessage = async (event: MessageEvent<FromWorker>) => {
  const message = event.data;
  if (message.kind === "exit") Deno.exit(message.code);
  if (role !== "cli") return;
  const reply: SpawnReply = { kind: "spawned", id: message.id };
  try {
    await startInBackground(serviceArgs(message.service));
  } catch (error) {
    reply.error = (error as Error).message;
  }
  worker.postMessage(reply);
};
worker.onerror = (event) => {
  event.preventDefault();
  console.error(`banger: ${event.message}`);
  Deno.exit(1);
};
const start: RoleStart = { kind: "start", role, args, launcher };
worker.postMessage(start);

/**
 * The configuration a role's permissions depend on; a broken file is left
 * for the role itself to report, with the defaults used meanwhile.
 */
async function roleConfig(configFile: string): Promise<RoleConfig | undefined> {
  try {
    const config = await loadConfig(configFile);
    return {
      qemuBin: config.qemuBin,
      hostSlots: parseCidr(config.cidr).size - 2,
      cidr: config.cidr,
      firecrackerBin: which(config.firecrackerBin),
      jailerBin: which(config.jailerBin),
    };
  } catch {
    return undefined;
  }
}

/** The argv of a service the CLI asked for: a fixed form per service. */
function serviceArgs(service: Service): string[] {
  if (service.role === "daemon") return ["daemon", "--background"];
  if (!Number.isInteger(service.ownerUid) || service.ownerUid < 0) {
    throw new RangeError(`Invalid owner uid ${service.ownerUid}`);
  }
  return ["helper", "--background", "--owner-uid", String(service.ownerUid)];
}

/**
 * Starts banger again with `roleArgs` in a new session (setsid), detached
 * from this terminal so that Ctrl-C here does not reach it.
 */
async function startInBackground(roleArgs: string[]): Promise<void> {
  const status = await new Deno.Command("setsid", {
    args: ["-f", launcher.exec, ...launcher.prefix, ...roleArgs],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!status.success) {
    throw new Error(
      `Cannot start banger ${roleArgs[0]}: setsid exited with ${status.code}`,
    );
  }
}

/**
 * How this process was started, so a role can start another: a compiled
 * binary re-runs itself; under `deno run` the same flags and module are used.
 */
function currentLauncher(): Launcher {
  const exec = Deno.execPath();
  const compiled = !/(^|\/)deno$/.test(exec);
  if (compiled) return { exec, prefix: [] };
  return {
    exec,
    prefix: [
      "run",
      "--unstable-worker-options",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-net",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      new URL(import.meta.url).pathname,
    ],
  };
}
