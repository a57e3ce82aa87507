/**
 * `banger daemon`: the owner daemon's composition root. It builds the
 * services (state, images, host network via the helper, VMM, VMs), adopts
 * or cleans up VMs left by an earlier run, and serves the CLI's socket.
 *
 * @module
 */
import { z } from "zod";
import { loadConfig } from "../config.ts";
import { type Paths, resolvePaths } from "../paths.ts";
import type { Logger } from "../util/log.ts";
import {
  EmptySchema,
  ImageBuildParamsSchema,
  VmCreateParamsSchema,
  VmKillParamsSchema,
  VmPruneParamsSchema,
  VmRefParamsSchema,
  VmRefsParamsSchema,
  VmSetParamsSchema,
  VmSetWorkspaceParamsSchema,
} from "../protocol/daemon.ts";
import { handler, serveConnection } from "../rpc/server.ts";
import { ensureKeyPair } from "../ssh/keys.ts";
import { acquireInstanceLock } from "../util/instance_lock.ts";
import { openLog } from "../util/log_file.ts";
import { probePermissions } from "../util/probe.ts";
import { VERSION } from "../version.ts";
import { detectAccel, hostTscKhz } from "../vmm/qemu.ts";
import { createVmm } from "../vmm/select.ts";
import { HelperJail } from "./helper_jail.ts";
import { KernelService } from "./kernels.ts";
import { KernelImportParamsSchema } from "../protocol/kernel.ts";
import { StateDb } from "./db.ts";
import { HelperClient } from "./host_network.ts";
import { DNS_PORT, type DnsServer, startDnsServer } from "./dns.ts";
import { type Image, ImageService } from "./images.ts";
import { StaleStopper } from "./stale.ts";
import { CREATE_STAGES, type CreateStage, VmService } from "./vms.ts";

/** How often VMs whose VMM exited on its own are cleaned up. */
const REAP_INTERVAL_MS = 10_000;

/** Seconds to wait for sshd: TCG boots take 15-25 s here, KVM a few. */
const SSH_TIMEOUT_SECONDS = { tcg: 180, kvm: 60 } as const;

/** Runs the daemon until it is told to stop; returns its exit status. */
export async function daemonMain(args: string[]): Promise<number> {
  if (args.includes("--probe-permissions")) {
    console.log(JSON.stringify(await probePermissions(), null, 2));
    return 0;
  }
  const paths = resolvePaths();
  const dirs = [
    paths.stateDir,
    paths.runDir,
    paths.vmmSocketDir,
    paths.vmsDir,
    paths.imagesDir,
    paths.cacheDir,
  ];
  for (const dir of dirs) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  }
  const log = openLog(
    args.includes("--background") ? paths.daemonLog : undefined,
    "info",
  ).with({ role: "daemon" });
  try {
    return await serve(paths, log);
  } catch (error) {
    log.error("daemon stopped", { error: String(error) });
    throw error;
  }
}

async function serve(paths: Paths, log: Logger): Promise<number> {
  const config = await loadConfig(paths.configFile);
  log = log.withLevel(config.logLevel);
  const instance = await acquireInstanceLock(`${paths.runDir}/daemon.lock`);
  if (!instance || await socketAnswers(paths.daemonSocket)) {
    log.error("another daemon is already serving", {
      socket: paths.daemonSocket,
    });
    console.error(`banger: a daemon already serves "${paths.daemonSocket}"`);
    return 1;
  }

  const sshKey = config.sshKeyPath ?? paths.sshKey;
  await ensureKeyPair(sshKey, "banger");
  await Deno.mkdir(`${paths.userStateDir}/ssh`, {
    recursive: true,
    mode: 0o700,
  });

  const db = new StateDb(paths.dbFile);
  const accel = await detectAccel(config.accel);
  const vmm = await createVmm(config, {
    accel,
    tscKhz: await hostTscKhz(),
    jail: new HelperJail(paths.helperSocket),
    log,
  });
  const images = new ImageService({
    db,
    imagesDir: paths.imagesDir,
    cacheDir: paths.cacheDir,
    mirror: config.debianMirror,
    securityMirror: config.debianSecurityMirror,
  });
  const kernels = new KernelService(
    paths.kernelsDir,
    `${paths.userStateDir}/import`,
  );
  const failAt = Deno.env.get("BANGER_TEST_FAIL_AFTER_STAGE");
  const network = new HelperClient(paths.helperSocket);
  let resolverRouted = false;
  const vms = new VmService({
    db,
    paths,
    config,
    images,
    kernels,
    network,
    vmm,
    ssh: { key: sshKey, knownHosts: paths.knownHosts },
    ownerUid: Deno.uid() ?? 0,
    log,
    sshTimeoutMs: 1000 *
      (config.sshTimeoutSeconds ?? SSH_TIMEOUT_SECONDS[accel]),
    failAfterStage: CREATE_STAGES.includes(failAt as CreateStage)
      ? failAt as CreateStage
      : undefined,
    // dns: once per daemon, route `~vm` to our server where resolved runs.
    afterBridge: async () => {
      if (resolverRouted) return;
      resolverRouted = true;
      const routed = await network.routeResolver(config.bridgeName, DNS_PORT)
        .catch((e) => ({ error: String(e) }));
      log.info("resolver routing", routed);
    },
  });
  await vms.reconcile(log);
  const stale = new StaleStopper({
    afterSeconds: config.autoStopStaleAfter,
    running: () => vms.staleCandidates(),
    stop: (id, limitMs) => vms.stopIfIdle(id, limitMs, log),
    onError: (vm, error) =>
      log.warn("cannot stop idle VM", { vm: vm.name, error: String(error) }),
  });
  stale.start();
  const reaper = setInterval(() => void vms.reapDead(log), REAP_INTERVAL_MS);

  // dns: answers come straight from the state of each VM's row.
  let dns: DnsServer | undefined;
  try {
    dns = await startDnsServer({
      lookup: (name) => {
        const row = db.vmByName(name);
        return row?.state === "running" ? row.ip : undefined;
      },
      log,
    });
  } catch (error) {
    // Another daemon in this network namespace may hold the port; VMs
    // still work by IP and through "banger ssh-config".
    log.warn("dns unavailable", { port: DNS_PORT, error: String(error) });
  }

  const listener = Deno.listen({
    transport: "unix",
    path: await freshSocket(paths.daemonSocket),
  });
  await Deno.chmod(paths.daemonSocket, 0o600);
  await Deno.writeTextFile(paths.daemonPidFile, `${Deno.pid}\n`);
  log.info("listening", {
    socket: paths.daemonSocket,
    accel,
    version: VERSION,
  });

  const stop = Promise.withResolvers<void>();
  const handlers = {
    ping: handler(
      EmptySchema,
      () =>
        Promise.resolve({ version: VERSION, pid: Deno.pid, root: paths.root }),
    ),
    "vm.create": handler(VmCreateParamsSchema, (p, ctx) => vms.create(p, ctx)),
    "image.build": handler(ImageBuildParamsSchema, async (p, ctx) =>
      imageInfo(
        await images.ensure(p.name, (detail) => ctx.progress("image", detail)),
      )),
    "image.list": handler(
      EmptySchema,
      () => Promise.resolve(images.list().map(imageInfo)),
    ),
    "kernel.import": handler(
      KernelImportParamsSchema,
      (p) => kernels.import(p),
    ),
    "kernel.list": handler(EmptySchema, () => kernels.list()),
    "vm.list": handler(EmptySchema, () => Promise.resolve(vms.list())),
    "vm.get": handler(
      VmRefParamsSchema,
      (p) => Promise.resolve(vms.get(p.ref)),
    ),
    "vm.delete": handler(
      VmRefsParamsSchema,
      (p, ctx) => vms.delete(p.refs, ctx.log),
    ),
    "vm.start": handler(VmRefsParamsSchema, (p, ctx) => vms.start(p.refs, ctx)),
    "vm.stop": handler(VmRefsParamsSchema, (p, ctx) => vms.stop(p.refs, ctx)),
    "vm.restart": handler(
      VmRefsParamsSchema,
      (p, ctx) => vms.restart(p.refs, ctx),
    ),
    "vm.kill": handler(
      VmKillParamsSchema,
      (p, ctx) => vms.kill(p.refs, p.signal ?? "KILL", ctx),
    ),
    "vm.prune": handler(
      VmPruneParamsSchema,
      (p, ctx) => vms.prune(p.refs, ctx.log),
    ),
    "vm.set": handler(VmSetParamsSchema, (p) => vms.set(p.ref, p)),
    "vm.stats": handler(VmRefParamsSchema, (p) => vms.stats(p.ref)),
    "vm.touch": handler(
      VmRefParamsSchema,
      (p) => Promise.resolve(vms.touch(p.ref)),
    ),
    "vm.set_workspace": handler(
      VmSetWorkspaceParamsSchema,
      (p) => Promise.resolve(vms.setWorkspace(p.ref, p.workspace)),
    ),
    "daemon.shutdown": handler(z.unknown(), () => {
      stop.resolve();
      return Promise.resolve({ stopping: true });
    }),
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => stop.resolve());
  }
  stop.promise.then(() => listener.close());

  try {
    for await (const conn of listener) {
      void serveConnection(conn, handlers, log);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
  stale.close();
  clearInterval(reaper);
  // Running VMs are left alone: their VMMs live in their own sessions and
  // the next daemon adopts them.
  await dns?.close();
  log.info("stopped");
  await Deno.remove(paths.daemonSocket).catch(() => {});
  await Deno.remove(paths.daemonPidFile).catch(() => {});
  db.close();
  return 0;
}

async function socketAnswers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Removes a stale socket file left by a daemon that died. */
async function freshSocket(path: string): Promise<string> {
  await Deno.remove(path).catch(() => {});
  return path;
}

function imageInfo(image: Image) {
  return {
    id: image.id,
    name: image.name,
    dir: image.dir,
    kernelRelease: image.kernelRelease,
  };
}
