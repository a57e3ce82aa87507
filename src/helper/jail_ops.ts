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
import {
  closeJailSources,
  isRegularFile,
  isSymlink,
  type JailSource,
  openJailSource,
  removeJail,
  stageJail,
} from "../jailer/chroot.ts";
import { joinFailures, runAll } from "../util/cleanup.ts";
import { JAIL_ID, jailPaths } from "../jailer/layout.ts";
import { endJailedFirecracker, startJailer } from "../jailer/launch.ts";

/** What the jailer operations are checked against. */
export interface JailPolicy {
  /** The jailer's chroot base: root's, outside the owner's state. */
  jailDir: string;
  /**
   * banger's state directory; files are admitted from its `vms/<id>/`,
   * `images/` and `kernels/` by where they really are, so it is compared
   * in its canonical form.
   */
  stateDir: string;
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
 * Opens `path` for a jail after checking that it is banger's own: an
 * absolute, normalized path inside one of `dirs` (canonical directories),
 * not a symlink itself, that really resolves inside one of `dirs` once
 * opened (so a symlinked directory on the way is caught), a regular file,
 * and owned by `ownerUid`. The checks are made on the open descriptor that
 * staging then links from, so the path cannot be swapped in between.
 * Throws `bad_request`; the caller closes the returned source.
 */
export function openStateFile(
  path: string,
  dirs: string[],
  what: string,
  ownerUid: number,
): JailSource {
  const refuse = (why: string) =>
    new RpcError(
      "bad_request",
      `Refusing ${what} "${path.slice(0, 200)}": ${why}`,
    );
  const inside = (candidate: string) =>
    dirs.some((dir) => candidate.startsWith(`${dir}/`));
  if (!path.startsWith("/") || normalize(path) !== path || !inside(path)) {
    throw refuse("not inside banger's state directories");
  }
  let source: JailSource;
  try {
    source = openJailSource(path);
  } catch (error) {
    throw refuse(`cannot open it (${(error as Error).message})`);
  }
  const problem = isSymlink(source.stat)
    ? "it is a symlink"
    : !inside(source.realPath)
    ? `it resolves to "${
      source.realPath.slice(0, 200)
    }", outside banger's state directories`
    : !isRegularFile(source.stat)
    ? "not a regular file"
    : source.stat.uid !== ownerUid
    ? `owned by uid ${source.stat.uid}, not the owner uid ${ownerUid}`
    : undefined;
  if (problem) {
    closeJailSources([source]);
    throw refuse(problem);
  }
  return source;
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
      for (const drive of p.drives) {
        if (!/^[A-Za-z0-9_]{1,64}$/.test(drive.id)) {
          throw new RpcError(
            "bad_request",
            `Refusing drive id "${drive.id.slice(0, 40)}": not alphanumeric`,
          );
        }
      }
      const state = await Deno.realPath(policy.stateDir);
      const vmDir = [join(state, "vms", id)];
      const imageDirs = [join(state, "images"), join(state, "kernels")];
      const opened: JailSource[] = [];
      const open = (path: string, dirs: string[], what: string) => {
        const source = openStateFile(path, dirs, what, policy.ownerUid);
        opened.push(source);
        return source;
      };
      try {
        // Every path is opened and checked before anything is made.
        const contents = {
          kernel: open(p.kernel, imageDirs, "kernel"),
          initrd: p.initrd === undefined
            ? undefined
            : open(p.initrd, imageDirs, "initrd"),
          // TODO: block devices (device-mapper snapshots) are staged as
          // device nodes by stageJail, but no banger-owned device naming
          // exists yet to check them against, so only VM files pass here.
          drives: p.drives.map((drive) => ({
            id: drive.id,
            source: open(drive.path, vmDir, "drive"),
          })),
          log: open(p.log, vmDir, "log file"),
          metrics: open(p.metrics, vmDir, "metrics file"),
          console: open(p.console, vmDir, "console file"),
        };
        const firecrackerBin = required(
          policy.firecrackerBin,
          "firecracker_bin",
        );
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
          ...contents,
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
          const failures = await runAll([
            {
              what: "end the jailed Firecracker",
              run: () => endJailedFirecracker(paths, id),
            },
            {
              what: "remove the jail",
              run: () => removeJail(policy.jailDir, id),
            },
          ]);
          if (failures.length) {
            ctx.log.warn("jail cleanup failed", { id, failures });
          }
          throw new RpcError(
            "operation_failed",
            `Cannot start the jailer for VM ${id}: ${(error as Error).message}${
              failures.length ? `; cleanup: ${failures.join("; ")}` : ""
            }`,
          );
        }
      } finally {
        closeJailSources(opened);
      }
    }),
    "jail.terminate": handler(JailIdParamsSchema, async (p, ctx) => {
      const id = checkJailId(p.id);
      const paths = jailPaths(policy.jailDir, id);
      let removed = false;
      // The jail is removed even when ending the process failed: its
      // mounts must not outlive the VM.
      const failures = await runAll([
        {
          what: "end the jailed Firecracker",
          run: () => endJailedFirecracker(paths, id),
        },
        {
          what: "remove the jail",
          run: async () => removed = await removeJail(policy.jailDir, id),
        },
      ]);
      if (failures.length) {
        throw new RpcError(
          "operation_failed",
          joinFailures(`Cannot terminate jail ${id}`, failures).message,
        );
      }
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
