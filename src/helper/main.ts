/**
 * `banger helper`: the root helper's entry point.
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import { loadConfig } from "../config.ts";
import { resolvePaths } from "../paths.ts";
import { parseCidr } from "../util/ipv4.ts";
import { acquireInstanceLock } from "../util/instance_lock.ts";
import { openLog } from "../util/log_file.ts";
import { probePermissions } from "../util/probe.ts";
import type { Logger } from "../util/log.ts";
import { which } from "../util/exec.ts";
import { JAIL_LIBRARY_DIRS } from "../roles.ts";
import { ownerGid } from "./jail_ops.ts";
import { ensureRootOwnedDir } from "../jailer/chroot.ts";
import { serveHelper } from "./server.ts";

/** Runs the helper; returns only on a startup error. */
export async function helperMain(args: string[]): Promise<number> {
  if (args.includes("--probe-permissions")) {
    console.log(JSON.stringify(await probePermissions(), null, 2));
    return 0;
  }
  const paths = resolvePaths();
  const background = args.includes("--background");
  // Root's own directory, before the log is opened in it.
  await ensureRootOwnedDir(paths.helperStateDir);
  const log = openLog(background ? paths.helperLog : undefined, "info")
    .with({ role: "helper" });
  try {
    return await serve(paths, args, log);
  } catch (error) {
    log.error("helper stopped", { error: String(error) });
    throw error;
  }
}

async function serve(
  paths: ReturnType<typeof resolvePaths>,
  args: string[],
  log: Logger,
): Promise<number> {
  const ownerArg = valueOf(args, "--owner-uid");
  const config = await loadConfig(paths.configFile);
  log = log.withLevel(config.logLevel);
  const ownerUid = ownerArg !== undefined
    ? parseUid(ownerArg)
    : await installedOwnerUid(paths.installFile) ?? 0;

  // The directory is 0711 so the owner can reach the socket inside it
  // without being able to list or replace it.
  await Deno.mkdir(paths.helperRunDir, { recursive: true, mode: 0o711 });
  await Deno.chmod(paths.helperRunDir, 0o711);
  const instance = await acquireInstanceLock(
    `${paths.helperRunDir}/helper.lock`,
  );
  if (!instance) {
    log.error("another helper is already serving", {
      socket: paths.helperSocket,
    });
    return 1;
  }
  await Deno.writeTextFile(paths.helperPidFile, `${Deno.pid}\n`);
  await serveHelper(
    paths.helperSocket,
    {
      ownerUid,
      cidr: parseCidr(config.cidr),
      tapPoolSize: config.tapPoolSize,
      jail: {
        jailDir: paths.jailDir,
        stateDir: paths.stateDir,
        firecrackerBin: which(config.firecrackerBin),
        jailerBin: which(config.jailerBin),
        ownerUid,
        ownerGid: await ownerGid(ownerUid).catch(() => undefined),
        libraryDirs: JAIL_LIBRARY_DIRS,
      },
    },
    log,
  );
  await Deno.remove(paths.helperPidFile).catch(() => {});
  return 0;
}

function valueOf(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

function parseUid(text: string): number {
  if (!/^\d{1,10}$/.test(text)) {
    throw new RangeError(`Invalid --owner-uid "${text}": expected a number`);
  }
  return Number(text);
}

/** The owner uid recorded by `banger system install`, if any. */
async function installedOwnerUid(path: string): Promise<number | undefined> {
  try {
    const install = parseToml(await Deno.readTextFile(path)) as {
      owner_uid?: unknown;
    };
    return typeof install.owner_uid === "number"
      ? install.owner_uid
      : undefined;
  } catch {
    return undefined;
  }
}
