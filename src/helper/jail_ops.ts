/**
 * The helper's jailer operations: stage a chroot and start the jailer in
 * it; end a jailed Firecracker and remove its jail. Every path the daemon sends
 * is checked to be banger's own before anything is linked, mounted or
 * started; the binaries come from the helper's own configuration, never
 * from the request.
 *
 * @module
 */
import { join, normalize } from "node:path";
import {
  JailIdParamsSchema,
  JailLaunchParamsSchema,
} from "../protocol/jail.ts";
import { RpcError } from "../protocol/envelope.ts";
import { type Handler, handler } from "../rpc/server.ts";
import { removeJail, stageJail } from "../jailer/chroot.ts";
import { JAIL_ID, jailPaths } from "../jailer/layout.ts";
import { endJailedFirecracker, startJailer } from "../jailer/launch.ts";

/** What the jailer operations are checked against. */
export interface JailPolicy {
  /** banger's `jail/` directory: the jailer's chroot base. */
  jailDir: string;
  vmsDir: string;
  imagesDir: string;
  kernelsDir: string;
  /** Resolved from config.toml by the helper; undefined when missing. */
  firecrackerBin: string | undefined;
  jailerBin: string | undefined;
  ownerUid: number;
  /**
   * The owner's primary group for the jailer's `--gid`; undefined when the
   * owner uid has no passwd entry (only jailed launches need it).
   */
  ownerGid: number | undefined;
  /** Library directories offered to a dynamically linked firecracker. */
  libraryDirs: string[];
}

/** Throws `bad_request` unless `id` is a banger VM id. */
export function checkJailId(id: string): string {
  if (!JAIL_ID.test(id)) {
    throw new RpcError(
      "bad_request",
      `Refusing jail id "${id.slice(0, 40)}": not a banger VM id`,
    );
  }
  return id;
}

/**
 * Throws `bad_request` unless `path` is a regular file (not a symlink)
 * directly or deeper inside one of `dirs`.
 */
export async function checkStateFile(
  path: string,
  dirs: string[],
  what: string,
): Promise<string> {
  const clean = normalize(path);
  const inside = path.startsWith("/") && clean === path &&
    dirs.some((dir) => clean.startsWith(`${dir}/`));
  if (!inside) {
    throw new RpcError(
      "bad_request",
      `Refusing ${what} "${
        path.slice(0, 200)
      }": not inside banger's state directories`,
    );
  }
  const info = await Deno.lstat(clean).catch(() => undefined);
  if (!info?.isFile) {
    throw new RpcError(
      "bad_request",
      `Refusing ${what} "${clean}": not a regular file`,
    );
  }
  return clean;
}

function required(value: string | undefined, key: string): string {
  if (!value) {
    throw new RpcError(
      "operation_failed",
      `Cannot start a jailed Firecracker: "${key}" in config.toml does not resolve to an executable`,
    );
  }
  return value;
}

/** The helper methods for jailed VMs. */
export function jailHandlers(policy: JailPolicy): Record<string, Handler> {
  return {
    "jail.launch": handler(JailLaunchParamsSchema, async (p, ctx) => {
      const id = checkJailId(p.id);
      const vmDir = join(policy.vmsDir, id);
      const imageDirs = [policy.imagesDir, policy.kernelsDir];
      const kernel = await checkStateFile(p.kernel, imageDirs, "kernel");
      const initrd = p.initrd === undefined
        ? undefined
        : await checkStateFile(p.initrd, imageDirs, "initrd");
      const drives = [];
      for (const drive of p.drives) {
        if (!/^[A-Za-z0-9_]{1,64}$/.test(drive.id)) {
          throw new RpcError(
            "bad_request",
            `Refusing drive id "${drive.id.slice(0, 40)}": not alphanumeric`,
          );
        }
        // TODO: block devices (device-mapper snapshots) are staged as
        // device nodes by stageJail, but no banger-owned device naming
        // exists yet to check them against, so only VM files pass here.
        drives.push({
          id: drive.id,
          path: await checkStateFile(drive.path, [vmDir], "drive"),
        });
      }
      const log = await checkStateFile(p.log, [vmDir], "log file");
      const metrics = await checkStateFile(p.metrics, [vmDir], "metrics file");
      const console = await checkStateFile(p.console, [vmDir], "console file");
      const firecrackerBin = required(policy.firecrackerBin, "firecracker_bin");
      const jailerBin = required(policy.jailerBin, "jailer_bin");
      const gid = policy.ownerGid;
      if (gid === undefined) {
        throw new RpcError(
          "bad_request",
          `Cannot launch a jailed firecracker: owner uid ${policy.ownerUid} has no entry in /etc/passwd to take the jailer's --gid from`,
        );
      }

      const paths = await stageJail(policy.jailDir, {
        id,
        uid: policy.ownerUid,
        gid,
        firecrackerBin,
        kernel,
        initrd,
        drives,
        log,
        metrics,
        console,
        libraryDirs: policy.libraryDirs,
      });
      ctx.log.info("jail staged", { id, root: paths.root });
      try {
        const pid = await startJailer(jailerBin, {
          id,
          execFile: firecrackerBin,
          uid: policy.ownerUid,
          gid,
          chrootBase: policy.jailDir,
          enablePci: p.enablePci,
        }, paths);
        ctx.log.info("jailed firecracker started", { id, pid });
        return { pid, apiSocket: paths.apiSocket, root: paths.root };
      } catch (error) {
        await endJailedFirecracker(paths, id).catch(() => {});
        await removeJail(policy.jailDir, id).catch((e) =>
          ctx.log.warn("jail cleanup failed", { id, error: String(e) })
        );
        throw new RpcError(
          "operation_failed",
          `Cannot start the jailer for VM ${id}: ${(error as Error).message}`,
        );
      }
    }),
    "jail.terminate": handler(JailIdParamsSchema, async (p, ctx) => {
      const id = checkJailId(p.id);
      const paths = jailPaths(policy.jailDir, id);
      await endJailedFirecracker(paths, id);
      const removed = await removeJail(policy.jailDir, id);
      ctx.log.info("jail terminated", { id, removed });
      return { id, removed };
    }),
  };
}

/**
 * The owner's primary gid from `/etc/passwd` (0 for root). Requires read
 * permission for /etc/passwd.
 */
export async function ownerGid(
  uid: number,
  passwd = "/etc/passwd",
): Promise<number> {
  if (uid === 0) return 0;
  const text = await Deno.readTextFile(passwd).catch(() => "");
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (Number(fields[2]) === uid && fields[3] !== undefined) {
      return Number(fields[3]);
    }
  }
  throw new Error(
    `Cannot find the primary group of owner uid ${uid} in "${passwd}"`,
  );
}
