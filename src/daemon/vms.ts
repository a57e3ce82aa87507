/**
 * The VM lifecycle service: create (with rollback), start, stop, restart,
 * kill, delete, prune, set, stats, and reconcile after a daemon restart.
 * It owns the vms table, the VM directories, the handles files and the
 * per-VM locks; images come from the image service, host changes go
 * through the helper seam and guest requests through the guest seam.
 *
 * Lock order: a VM's lock is taken before an image build is awaited and
 * before the host-network lock; no code holds two VM locks at once.
 *
 * Every operation that ends a VM's host resources goes through
 * `#shutdown`, which runs each cleanup step (VMM, tap, control socket,
 * handles) even when an earlier one fails and reports the failures joined.
 *
 * @module
 */
import { join } from "node:path";
import type { Config, Sourced } from "../config.ts";
import { type Paths, vmmSocket } from "../paths.ts";
import {
  type BatchResult,
  CREATE_STAGES,
  type CreateStage,
  type KILL_SIGNALS,
  type VmCreateParams,
  type VmInfo,
  VmNameSchema,
  type VmStats,
} from "../protocol/daemon.ts";
import { RpcError } from "../protocol/envelope.ts";
import type { HandlerContext } from "../rpc/server.ts";
import { generateHostKey } from "../ssh/keys.ts";
import { removeKnownHosts } from "../ssh/known_hosts.ts";
import { hostAlias, type SshIdentity } from "../ssh/options.ts";
import { type CleanupStep, joinFailures, runAll } from "../util/cleanup.ts";
import { formatIpv4, hostIndex, parseCidr, parseIpv4 } from "../util/ipv4.ts";
import type { Logger } from "../util/log.ts";
import { KeyedMutex } from "../util/mutex.ts";
import { generateVmName } from "../util/names.ts";
import { findProcesses, sendSignal } from "../util/procfs.ts";
import type { VmmDriver, VmmHandles } from "../vmm/types.ts";
import { runBatch } from "./batch.ts";
import { type SpecFrom, type StateDb, vmInfo, type VmRow } from "./db.ts";
import {
  createRootCopy,
  createRootOverlay,
  createWorkDisk,
  rootFile,
  VM_FILES,
  writeSeedDisk,
} from "./disks.ts";
import { type GuestOps, sshGuestOps } from "./guest_ops.ts";
import { controlPath } from "../ssh/control.ts";
import {
  type Handles,
  parseHandles,
  readHandles,
  removeHandles,
  writeHandles,
} from "./handles.ts";
import type { HostNetwork } from "./host_network.ts";
import type { Image, ImageService } from "./images.ts";
import type { StaleCandidate } from "./stale.ts";
import { vmmUsage } from "./vm_stats.ts";
import { natOnStart, natOnStop } from "./nat.ts";
import type { KernelService } from "./kernels.ts";
import { ROOT_LABEL } from "../image/guest_files.ts";

export { runAll };

export { CREATE_STAGES, type CreateStage };

/** How long a stopping guest gets to power itself off before the VMM ends. */
const STOP_GRACE_MS = 30_000;
/** How long a signalled VMM gets to exit before it is ended for sure. */
const KILL_WAIT_MS = 5_000;
const POLL_MS = 100;

/** Dependencies of {@linkcode VmService}. */
export interface VmServiceOptions {
  db: StateDb;
  paths: Paths;
  config: Config;
  images: Pick<ImageService, "ensure" | "check">;
  /** Imported kernels, for `--kernel`. */
  kernels?: KernelService | undefined;
  network: HostNetwork;
  vmm: VmmDriver;
  ssh: SshIdentity;
  ownerUid: number;
  log: Logger;
  /** Milliseconds to wait for sshd after the VMM starts. */
  sshTimeoutMs: number;
  /** Test hook: fail a create right after this stage. */
  failAfterStage?: CreateStage | undefined;
  /** The guest seam (default: ssh with banger's identity). */
  guest?: GuestOps;
  /** Milliseconds a stop waits for the guest's own power-off. */
  stopGraceMs?: number;
  /** Sends a signal to a VMM process (default: kill(1); tests replace it). */
  signal?: (pid: number, signal: string) => Promise<void>;
  now?: () => number;
  /** Called after each ensure of the bridge (e.g. to route `~vm` DNS). */
  afterBridge?: () => Promise<void>;
}

/** What an operation reports to its caller. */
type Ctx = Pick<HandlerContext, "progress" | "log">;

/** An ssh timeout: the VM is left running for inspection, never undone. */
class GuestTimeout extends RpcError {
  constructor(message: string) {
    super("operation_failed", message);
  }
}

/** Owns VM state, directories and locks. */
export class VmService {
  readonly #locks = new KeyedMutex();
  /** Serializes bridge set-up: parallel creates would race to add it. */
  readonly #hostLock = new KeyedMutex();
  readonly #guest: GuestOps;
  readonly #now: () => number;

  constructor(private readonly o: VmServiceOptions) {
    this.#guest = o.guest ?? sshGuestOps(o.ssh);
    this.#now = o.now ?? Date.now;
  }

  /** Every VM, oldest first. */
  list(): VmInfo[] {
    return this.o.db.listVms().map((row) => this.#info(row));
  }

  /** The VM `ref` names (name, id or unique id prefix); throws not_found. */
  resolve(ref: string): VmRow {
    const db = this.o.db;
    const exact = db.vmByName(ref) ?? db.vmById(ref);
    if (exact) return exact;
    const byPrefix = ref.length >= 4
      ? db.listVms().filter((row) => row.id.startsWith(ref))
      : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) {
      throw new RpcError(
        "not_found",
        `Cannot find VM "${ref}": the id prefix matches ${byPrefix.length} VMs (${
          byPrefix.map((row) => row.name).join(", ")
        }); give more of the id or the name`,
      );
    }
    throw new RpcError("not_found", `Cannot find VM "${ref}": no such VM`);
  }

  get(ref: string): VmInfo {
    return this.#info(this.resolve(ref));
  }

  /** Records the guest path of a workspace copied into the VM. */
  setWorkspace(ref: string, workspace: string): VmInfo {
    const row = this.resolve(ref);
    this.o.db.updateVm(row.id, { workspace });
    return this.get(row.id);
  }

  /** Records banger activity on a running VM (see `stale.ts`). */
  touch(ref: string): VmInfo {
    const row = this.resolve(ref);
    this.o.db.updateVm(row.id, { last_active_at: this.#iso() });
    return this.get(row.id);
  }

  /** Running VMs with their last activity, for the stale check. */
  staleCandidates(): StaleCandidate[] {
    return this.o.db.listVms().filter((row) => row.state === "running").map(
      (row) => ({
        id: row.id,
        name: row.name,
        lastActiveMs: Date.parse(row.last_active_at ?? row.updated_at),
      }),
    );
  }

  /**
   * Creates a VM and (unless `params.start` is false) boots it, reporting
   * each stage. A failure at any stage undoes every step and leaves no
   * row, directory, tap or VMM; only an ssh timeout leaves the running VM
   * for inspection.
   */
  async create(
    params: VmCreateParams,
    ctx: Ctx,
  ): Promise<{ vm: VmInfo; timings: Record<string, number> }> {
    // An unknown image or kernel is refused before anything exists.
    this.o.images.check(params.image ?? this.o.config.defaultImage);
    if (params.kernel !== undefined) await this.#kernel(params.kernel);
    const row = this.#reserve(params);
    const dir = this.#dir(row.id);
    const clock = new StageClock(ctx, this.o.failAfterStage);
    const log = ctx.log.with({ vm: row.name, id: row.id });
    const undo: CleanupStep[] = [{
      what: "remove the VM record",
      run: () => Promise.resolve(this.o.db.deleteVm(row.id)),
    }];

    return await this.#locks.run(row.id, async () => {
      try {
        clock.stage("image", row.image);
        const image = await this.o.images.ensure(
          row.image,
          (detail) => ctx.progress("image", detail),
        );
        clock.done("image");

        clock.stage("disks");
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
        undo.push({
          what: "remove the VM directory",
          run: () => removeDir(dir),
        });
        const root = this.o.vmm.rootFormat ?? "qcow2";
        const rootPath = join(dir, rootFile(root));
        if (root === "raw") await createRootCopy(image.rootfs, rootPath);
        else await createRootOverlay(image.rootfs, rootPath);
        await createWorkDisk(
          join(dir, VM_FILES.work),
          row.disk_mib,
          image.rootSkeleton,
        );
        if (params.start === false) {
          await this.#ensureHostKey(row, dir);
          clock.done("disks");
          this.o.db.updateVm(row.id, { state: "stopped" });
          log.info("created", { started: false });
          return { vm: this.get(row.id), timings: clock.timings };
        }
        await this.#boot(row, image, clock, undo, log);
      } catch (error) {
        if (error instanceof GuestTimeout) throw error;
        const failures = await runAll(undo.reverse());
        log.warn("create failed, rolled back", {
          error: String(error),
          cleanup: failures,
        });
        throw withCleanup(error, failures);
      }
      log.info("ready", { timings: clock.timings });
      return { vm: this.get(row.id), timings: clock.timings };
    });
  }

  /** Starts stopped VMs (a running one is reported as such). */
  async start(refs: string[], ctx: Ctx): Promise<BatchResult> {
    return await this.#batch(refs, (id) => this.#start(id, ctx));
  }

  /**
   * Stops VMs: the guest syncs and powers off over ssh (a short connect
   * timeout, so an unreachable guest costs seconds), then the VMM is ended
   * if it is still there, then the tap is deleted.
   */
  async stop(refs: string[], ctx: Ctx): Promise<BatchResult> {
    return await this.#batch(refs, async (id) => {
      const row = this.#row(id);
      if (row.state === "stopped" && !this.#hasHandles(row)) {
        return "already stopped";
      }
      this.#refuseCreating(row, "stop");
      const { guestUnreachable } = await this.#shutdown(
        row,
        { kind: "stop" },
        ctx.log,
      );
      // The user should know the guest got no chance to sync.
      if (guestUnreachable) {
        return "stopped without a sync: the guest did not answer ssh, so its VMM was ended";
      }
    });
  }

  /**
   * Stops a VM cleanly if it is still running and has had no activity for
   * `idleMs` once its lock is free; returns whether it stopped. The check
   * is repeated under the lock because a create or start holding it
   * records activity when it finishes.
   */
  async stopIfIdle(id: string, idleMs: number, log: Logger): Promise<boolean> {
    return await this.#locks.run(id, async () => {
      const row = this.o.db.vmById(id);
      if (row?.state !== "running") return false;
      const last = Date.parse(row.last_active_at ?? row.updated_at);
      if (this.#now() - last < idleMs) return false;
      log.info("stopping idle VM", {
        vm: row.name,
        idleSeconds: Math.round((this.#now() - last) / 1000),
      });
      await this.#shutdown(row, { kind: "stop" }, log);
      return true;
    });
  }

  /** Restarts VMs: a clean stop, then a start (a real reboot). */
  async restart(refs: string[], ctx: Ctx): Promise<BatchResult> {
    return await this.#batch(refs, async (id) => {
      const row = this.#row(id);
      this.#refuseCreating(row, "restart");
      // Like systemctl, a restart of a stopped VM starts it; it says so.
      const wasUp = row.state !== "stopped" || this.#hasHandles(row);
      if (wasUp) await this.#shutdown(row, { kind: "stop" }, ctx.log);
      await this.#start(id, ctx);
      if (!wasUp) return "started (it was stopped)";
    });
  }

  /** Signals the VMMs (default SIGKILL), then cleans up: ends "stopped". */
  async kill(
    refs: string[],
    signal: typeof KILL_SIGNALS[number],
    ctx: Ctx,
  ): Promise<BatchResult> {
    return await this.#batch(refs, async (id) => {
      const row = this.#row(id);
      this.#refuseCreating(row, "kill");
      if (row.state === "stopped" && !this.#hasHandles(row)) {
        return "already stopped";
      }
      await this.#shutdown(row, { kind: "kill", signal }, ctx.log);
    });
  }

  /**
   * Deletes VMs: ends what runs, then removes disks, record and the VM's
   * known_hosts lines. Each VM's cleanup runs every step even when one
   * fails; the record stays (state "error") until all pass.
   */
  async delete(refs: string[], log: Logger): Promise<BatchResult> {
    return await this.#batch(refs, (id) => this.#destroy(id, log));
  }

  /**
   * Deletes the given VMs that are not running (the CLI lists them and
   * asks first); one that started meanwhile is kept and reported.
   */
  async prune(refs: string[], log: Logger): Promise<BatchResult> {
    return await this.#batch(refs, async (id) => {
      const row = this.#row(id);
      if (row.state === "running" || row.state === "creating") {
        return `kept: it is ${row.state}`;
      }
      await this.#destroy(id, log);
    });
  }

  /** Changes a stopped VM's vcpu and memory. */
  async set(
    ref: string,
    change: { vcpu?: number | undefined; memoryMib?: number | undefined },
  ): Promise<VmInfo> {
    const id = this.resolve(ref).id;
    return await this.#locks.run(id, () => {
      const row = this.#row(id);
      if (row.state !== "stopped") {
        throw new RpcError(
          "bad_request",
          `Cannot change VM "${row.name}": it is ${row.state}; stop it first with "banger vm stop ${row.name}"`,
        );
      }
      if (change.vcpu === undefined && change.memoryMib === undefined) {
        throw new RpcError(
          "bad_request",
          `Cannot change VM "${row.name}": nothing to change (give --vcpu or --memory)`,
        );
      }
      const from = { ...parseSpecFromText(row.spec_from) };
      if (change.vcpu !== undefined) from.vcpu = "flag";
      if (change.memoryMib !== undefined) from.memory = "flag";
      this.o.db.updateVm(id, {
        ...(change.vcpu !== undefined ? { vcpu: change.vcpu } : {}),
        ...(change.memoryMib !== undefined
          ? { memory_mib: change.memoryMib }
          : {}),
      });
      this.o.db.db.prepare("UPDATE vms SET spec_from = ? WHERE id = ?").run(
        JSON.stringify(from),
        id,
      );
      return Promise.resolve(this.get(id));
    });
  }

  /** Host-side CPU and memory of the VMM, and disk usage of its files. */
  async stats(ref: string): Promise<VmStats> {
    const row = this.resolve(ref);
    const dir = this.#dir(row.id);
    const handles = await this.#loadHandles(row);
    const pid = handles?.pid || row.pid;
    const alive = pid
      ? await this.o.vmm.isAlive(this.#vmmHandles(row, handles, pid), dir)
      : false;
    const usage = alive && pid ? await vmmUsage(pid) : undefined;
    const disks = [];
    for (const file of [VM_FILES.root, VM_FILES.work, VM_FILES.seed]) {
      try {
        const info = await Deno.stat(join(dir, file));
        disks.push({
          file,
          sizeMib: mib(info.size),
          usedMib: mib((info.blocks ?? 0) * 512),
        });
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    return {
      name: row.name,
      state: row.state,
      pid: alive ? pid ?? null : null,
      cpuPercent: usage?.cpuPercent ?? null,
      rssMib: usage?.rssMib ?? null,
      uptimeSeconds: usage?.uptimeSeconds ?? null,
      disks,
      diskUsedMib: Math.round(disks.reduce((s, d) => s + d.usedMib, 0) * 10) /
        10,
    };
  }

  /**
   * Brings the database in line with reality after a daemon start: VMs
   * whose VMM is alive are adopted (marked running, pid and handles kept);
   * VMs recorded as running (or holding handles) whose VMM is dead are
   * cleaned up from whatever durable state exists and marked stopped;
   * half-made creates are removed.
   */
  async reconcile(log: Logger): Promise<void> {
    for (const row of this.o.db.listVms()) {
      await this.#locks.run(row.id, () => this.#reconcileOne(row.id, log))
        .catch((error) =>
          log.warn("reconcile failed", { vm: row.name, error: String(error) })
        );
    }
  }

  /**
   * Cleans up running VMs whose VMM has gone (the guest powered itself
   * off, or the VMM crashed) while the daemon ran. Called periodically.
   */
  async reapDead(log: Logger): Promise<void> {
    for (const row of this.o.db.listVms()) {
      if (row.state !== "running") continue;
      await this.#locks.run(row.id, async () => {
        const current = this.o.db.vmById(row.id);
        if (current?.state !== "running") return;
        if (await this.#alive(current)) return;
        log.info("VMM exited on its own; cleaning up", { vm: current.name });
        await this.#shutdown(current, { kind: "force" }, log);
      }).catch((error) =>
        log.warn("cleanup of an exited VM failed", {
          vm: row.name,
          error: String(error),
        })
      );
    }
  }

  async #reconcileOne(id: string, log: Logger): Promise<void> {
    const row = this.o.db.vmById(id);
    if (!row) return;
    if (row.state === "creating") {
      log.warn("removing VM left half-made by a crash", { vm: row.name });
      await this.#destroy(row.id, log);
      return;
    }
    if (await this.#alive(row)) {
      const handles = await this.#loadHandles(row);
      if (row.state !== "running") {
        this.o.db.updateVm(row.id, { state: "running" });
      }
      if (handles && row.pid !== handles.pid) {
        this.o.db.updateVm(row.id, { pid: handles.pid });
      }
      log.info("adopted running VM", { vm: row.name, pid: handles?.pid });
      // NAT rules are restored if a crash lost them; see nat.ts.
      await natOnStart(this.o.network, row, this.o.config.bridgeName)
        .catch((e) =>
          log.warn("cannot restore NAT rules", {
            vm: row.name,
            error: String(e),
          })
        );
      return;
    }
    if (
      row.state === "running" || row.state === "error" ||
      this.#hasHandles(row) || await fileExists(this.#handlesPath(row.id))
    ) {
      await this.#shutdown(row, { kind: "force" }, log);
      log.info("VM found dead, cleaned up and marked stopped", {
        vm: row.name,
      });
    }
  }

  async #start(id: string, ctx: Ctx): Promise<string | void> {
    const row = this.#row(id);
    this.#refuseCreating(row, "start");
    if (row.state === "running" && await this.#alive(row)) {
      return "already running";
    }
    const log = ctx.log.with({ vm: row.name, id });
    // Leftovers of a VMM that died (or a failed stop) go first, so the tap
    // and control socket are free.
    if (row.state !== "stopped" || this.#hasHandles(row)) {
      await this.#shutdown(row, { kind: "force" }, log);
    }
    const clock = new StageClock(ctx, undefined);
    clock.stage("image", row.image);
    const image = await this.o.images.ensure(
      row.image,
      (detail) => ctx.progress("image", detail),
    );
    clock.done("image");
    clock.stage("disks");
    const undo: CleanupStep[] = [];
    try {
      await this.#boot(this.#row(id), image, clock, undo, log);
    } catch (error) {
      if (error instanceof GuestTimeout) throw error;
      const failures = await runAll(undo.reverse());
      this.o.db.updateVm(id, {
        state: failures.length ? "error" : "stopped",
        pid: null,
      });
      log.warn("start failed, cleaned up", {
        error: String(error),
        cleanup: failures,
      });
      throw withCleanup(error, failures);
    }
    log.info("started", { timings: clock.timings });
  }

  /**
   * Writes the seed, creates the tap, launches the VMM and waits for the
   * guest. Every step that made something pushes its undo onto `undo`.
   * The "disks" stage is open when this is called.
   */
  async #boot(
    row: VmRow,
    image: Image,
    clock: StageClock,
    undo: CleanupStep[],
    log: Logger,
  ): Promise<void> {
    if (row.vmm !== this.o.vmm.name) {
      throw new RpcError(
        "bad_request",
        `Cannot boot VM "${row.name}": it was made for ${row.vmm} and this daemon runs ${this.o.vmm.name}; recreate it`,
      );
    }
    // The kernel chosen at create time (--kernel), else the image's.
    const kernel = row.kernel ? await this.#kernel(row.kernel) : undefined;
    const root = this.o.vmm.rootFormat ?? "qcow2";
    const dir = this.#dir(row.id);
    await this.#ensureHostKey(row, dir);
    await this.#writeSeed(row, dir);
    clock.done("disks");

    clock.stage("network", row.tap);
    const cidr = parseCidr(this.o.config.cidr);
    const handles: Handles = {
      vmm: this.o.vmm.name,
      pid: 0,
      controlSocket: vmmSocket(
        this.o.paths,
        hostIndex(cidr, parseIpv4(row.ip)),
      ),
      tap: row.tap,
      ip: row.ip,
    };
    // Recorded before the tap exists, so that a crash from here on leaves
    // the daemon a note of what to clean up.
    await this.#saveHandles(row.id, handles);
    undo.push({
      what: "forget the VM's handles",
      run: () => this.#forgetHandles(row.id),
    });
    await this.#hostLock.run("bridge", () =>
      this.o.network.ensureBridge(
        this.o.config.bridgeName,
        this.o.config.bridgeIp,
        cidr.prefix,
      ));
    undo.push({
      what: `delete tap "${row.tap}"`,
      run: () => this.o.network.deleteTap(row.tap),
    });
    await this.o.network.createTap(
      row.tap,
      this.o.config.bridgeName,
      this.o.ownerUid,
    );
    // NAT rules (--nat) and DNS routing; see nat.ts.
    undo.push({
      what: `remove NAT rules of tap "${row.tap}"`,
      run: () => natOnStop(this.o.network, row),
    });
    await natOnStart(this.o.network, row, this.o.config.bridgeName);
    await this.o.afterBridge?.();
    clock.done("network");

    clock.stage("vmm", this.o.vmm.name);
    await removeFile(handles.controlSocket);
    await this.#guest.closeConnection(this.#sshControl(row));
    const release = this.o.vmm.release?.bind(this.o.vmm);
    if (release) {
      undo.push({
        what: "release the VMM's files",
        run: () => release(row.id, dir, handles.controlSocket),
      });
    }
    const initrd = kernel ? kernel.initrdPath : image.initrd;
    const launched = await this.o.vmm.launch({
      id: row.id,
      name: row.name,
      vcpu: row.vcpu,
      memoryMib: row.memory_mib,
      kernel: kernel?.vmlinux ?? image.kernel,
      initrd,
      cmdline: kernelCmdline(initrd !== undefined),
      drives: [
        {
          id: "root",
          path: join(dir, rootFile(root)),
          format: root,
          readOnly: false,
        },
        {
          id: "work",
          path: join(dir, VM_FILES.work),
          format: "raw",
          readOnly: false,
        },
        {
          id: "seed",
          path: join(dir, VM_FILES.seed),
          format: "raw",
          readOnly: true,
        },
      ],
      net: { tap: row.tap, mac: macFor(row.ip) },
      dir,
      controlSocket: handles.controlSocket,
      consoleLog: join(dir, VM_FILES.console),
    });
    undo.push({
      what: "stop the VMM",
      run: () => this.o.vmm.terminate(launched, dir),
    });
    await this.#saveHandles(row.id, { ...handles, pid: launched.pid });
    this.o.db.updateVm(row.id, {
      state: "running",
      pid: launched.pid,
      last_active_at: this.#iso(),
    });
    log.info("vmm started", { pid: launched.pid });
    clock.done("vmm");

    clock.stage("boot");
    let booted = false;
    const wait = await this.#guest.waitReady({
      name: row.name,
      ip: row.ip,
      controlPath: this.#sshControl(row),
      consoleLog: join(dir, VM_FILES.console),
      timeoutMs: this.o.sshTimeoutMs,
      alive: () => this.o.vmm.isAlive(launched, dir),
      onBoot: () => {
        booted = true;
        clock.done("boot");
        clock.stage("ssh");
      },
    });
    if (!wait.ok) {
      log.warn("guest did not answer", { reason: wait.reason });
      if (wait.reason === "timeout") throw new GuestTimeout(wait.message);
      throw new RpcError(
        "operation_failed",
        `${wait.message}${await consoleTail(join(dir, VM_FILES.console))}`,
      );
    }
    if (!booted) {
      clock.done("boot");
      clock.stage("ssh");
    }
    // A slow boot is not idleness: the stale clock starts when it answers.
    this.o.db.updateVm(row.id, { last_active_at: this.#iso() });
    clock.done("ssh");
  }

  /**
   * Ends a VM's host resources, every step even when one fails:
   * - "stop": the guest syncs and powers off over ssh, then the VMM gets
   *   the grace period to exit before it is ended;
   * - "kill": the VMM gets `signal`, then is ended if it lingers;
   * - "force": the VMM is ended (QMP quit, then signals).
   * Then the tap and control socket go, and last the handles. Ends in
   * "stopped"; when a step fails the VM is marked "error", its handles are
   * kept for the next try, and the joined failures are thrown.
   */
  async #shutdown(
    row: VmRow,
    how:
      | { kind: "stop" }
      | { kind: "kill"; signal: string }
      | { kind: "force" },
    log: Logger,
  ): Promise<{ guestUnreachable: boolean }> {
    let guestUnreachable = false;
    const dir = this.#dir(row.id);
    const handles = await this.#loadHandles(row);
    const pid = handles?.pid || row.pid || await this.#findVmmPid(dir);
    const vmm = pid ? this.#vmmHandles(row, handles, pid) : undefined;
    const alive = () =>
      vmm ? this.o.vmm.isAlive(vmm, dir) : Promise.resolve(false);
    const steps: CleanupStep[] = [];
    if (how.kind === "stop") {
      steps.push({
        what: "power off the guest",
        run: async () => {
          if (!(await alive())) return;
          const asked = await this.#guest.powerOff(
            { name: row.name, ip: row.ip, controlPath: this.#sshControl(row) },
            this.o.vmm.guestStop ?? "poweroff",
          );
          if (!asked) {
            guestUnreachable = true;
            log.info("guest unreachable over ssh; ending the VMM", {
              vm: row.name,
            });
            return;
          }
          await waitUntil(
            async () => !(await alive()),
            this.o.stopGraceMs ?? STOP_GRACE_MS,
          );
        },
      });
    }
    if (how.kind === "kill") {
      steps.push({
        what: `send SIG${how.signal} to the VMM`,
        run: async () => {
          if (!vmm || !(await alive())) return;
          await (this.o.signal ?? sendSignal)(vmm.pid, how.signal);
          await waitUntil(async () => !(await alive()), KILL_WAIT_MS);
        },
      });
    }
    steps.push(
      {
        what: "stop the VMM",
        run: async () => {
          if (vmm && await alive()) await this.o.vmm.terminate(vmm, dir);
        },
      },
      {
        what: "release the VMM's files",
        run: async () => {
          await this.o.vmm.release?.(row.id, dir, this.#controlSocket(row));
        },
      },
      {
        what: `delete tap "${handles?.tap ?? row.tap}"`,
        run: () => this.o.network.deleteTap(handles?.tap ?? row.tap),
      },
      // network: NAT rules go with the tap; see nat.ts.
      {
        what: `remove NAT rules of tap "${row.tap}"`,
        run: () => natOnStop(this.o.network, row),
      },
      {
        what: "close the shared ssh connection",
        run: () => this.#guest.closeConnection(this.#sshControl(row)),
      },
      {
        what: "remove the VMM control socket",
        run: () =>
          removeFile(
            handles?.controlSocket ??
              vmmSocket(
                this.o.paths,
                hostIndex(parseCidr(this.o.config.cidr), parseIpv4(row.ip)),
              ),
          ),
      },
    );
    const failures = await runAll(steps);
    if (failures.length > 0) {
      this.o.db.updateVm(row.id, { state: "error" });
      log.warn("cleanup incomplete", { vm: row.name, failures });
      throw joinFailures(`Cannot stop VM "${row.name}" cleanly`, failures);
    }
    const last = await runAll([{
      what: "forget the VM's handles",
      run: () => this.#forgetHandles(row.id),
    }]);
    this.o.db.updateVm(row.id, {
      state: last.length ? "error" : "stopped",
      pid: null,
    });
    if (last.length) {
      throw joinFailures(`Cannot stop VM "${row.name}" cleanly`, last);
    }
    log.info("stopped", { vm: row.name, how: how.kind });
    return { guestUnreachable };
  }

  async #destroy(id: string, log: Logger): Promise<string | void> {
    const row = this.o.db.vmById(id);
    if (!row) return;
    const dir = this.#dir(id);
    const failures: string[] = [];
    const needsShutdown = row.state !== "stopped" || this.#hasHandles(row) ||
      await fileExists(this.#handlesPath(id));
    if (needsShutdown) {
      try {
        await this.#shutdown(row, { kind: "force" }, log);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    failures.push(
      ...await runAll([
        {
          what: "remove the VM directory",
          run: () => removeDir(dir),
        },
        {
          what: "forget the VM's host key",
          run: () =>
            removeKnownHosts(this.o.ssh.knownHosts, [
              hostAlias(row.name),
              row.ip,
            ]),
        },
      ]),
    );
    if (failures.length > 0) {
      this.o.db.updateVm(id, { state: "error" });
      log.warn("delete incomplete", { vm: row.name, failures });
      throw joinFailures(
        `Cannot delete VM "${row.name}" completely`,
        failures,
      );
    }
    this.o.db.deleteVm(id);
    log.info("deleted", { vm: row.name, id });
  }

  /** Resolves once, de-duplicates and runs `op` per VM under its lock. */
  async #batch(
    refs: string[],
    op: (id: string) => Promise<string | void>,
  ): Promise<BatchResult> {
    return await runBatch(
      refs,
      (ref) => this.resolve(ref).id,
      (id) => this.#locks.run(id, () => op(id)),
    );
  }

  /** The row of `id` as it is now (it may have changed while waiting). */
  #row(id: string): VmRow {
    const row = this.o.db.vmById(id);
    if (!row) {
      throw new RpcError("not_found", `Cannot find VM "${id}": it is gone`);
    }
    return row;
  }

  #refuseCreating(row: VmRow, action: string): void {
    if (row.state === "creating") {
      throw new RpcError(
        "bad_request",
        `Cannot ${action} VM "${row.name}": it is still being created`,
      );
    }
  }

  /** The handles file, else the database's mirror, else nothing. */
  async #loadHandles(row: VmRow): Promise<Handles | undefined> {
    try {
      return await readHandles(this.#dir(row.id));
    } catch {
      // A missing or corrupt file must not block cleanup.
    }
    try {
      return row.handles ? parseHandles(row.handles) : undefined;
    } catch {
      return undefined;
    }
  }

  #hasHandles(row: VmRow): boolean {
    return Boolean(row.handles);
  }

  /** File first, then the database mirror (see `handles.ts`). */
  async #saveHandles(id: string, handles: Handles): Promise<void> {
    await writeHandles(this.#dir(id), handles);
    this.o.db.updateVm(id, { handles: JSON.stringify(handles) });
  }

  async #forgetHandles(id: string): Promise<void> {
    await removeHandles(this.#dir(id));
    this.o.db.updateVm(id, { handles: null });
  }

  /** The VM's shared ssh connection (see ssh/control.ts). */
  #sshControl(row: VmRow): string | undefined {
    return controlPath(this.o.paths.vmmSocketDir, this.o.config.cidr, row.ip);
  }

  #handlesPath(id: string): string {
    return join(this.#dir(id), VM_FILES.handles);
  }

  #vmmHandles(
    row: VmRow,
    handles: Handles | undefined,
    pid: number,
  ): VmmHandles {
    return {
      vmm: handles?.vmm ?? row.vmm,
      pid,
      controlSocket: handles?.controlSocket ??
        vmmSocket(
          this.o.paths,
          hostIndex(parseCidr(this.o.config.cidr), parseIpv4(row.ip)),
        ),
    };
  }

  async #alive(row: VmRow): Promise<boolean> {
    const handles = await this.#loadHandles(row);
    const pid = handles?.pid || row.pid;
    if (!pid) return false;
    return await this.o.vmm.isAlive(
      this.#vmmHandles(row, handles, pid),
      this.#dir(row.id),
    );
  }

  /**
   * Last resort when neither the handles file nor the database knows the
   * VMM's pid: the process whose command line names the VM's directory.
   */
  async #findVmmPid(dir: string): Promise<number | undefined> {
    const found = await findProcesses(dir).catch(() => []);
    return found[0];
  }

  async #kernel(name: string) {
    if (!this.o.kernels) {
      throw new RpcError(
        "bad_request",
        `Cannot use kernel "${name}": this daemon has no kernel store`,
      );
    }
    return await this.o.kernels.get(name);
  }

  /** Reserves name, address and tap by inserting the row (synchronously). */
  #reserve(params: VmCreateParams): VmRow {
    const db = this.o.db;
    const config = this.o.config;
    const rows = db.listVms();
    if (params.name !== undefined) {
      const checked = VmNameSchema.safeParse(params.name);
      if (!checked.success) {
        throw new RpcError(
          "bad_request",
          `Invalid VM name "${params.name}": ${
            checked.error.issues[0]?.message
          }`,
        );
      }
      const existing = db.vmByName(params.name);
      if (existing) {
        throw new RpcError(
          "already_exists",
          `Cannot create VM "${params.name}": name is already taken by a ${existing.state} VM`,
        );
      }
      // Names are looked up before ids, so this name would hide that VM
      // from every command that names it by id (prune does).
      const shadowed = db.vmById(params.name);
      if (shadowed) {
        throw new RpcError(
          "already_exists",
          `Cannot create VM "${params.name}": it is the id of VM "${shadowed.name}"`,
        );
      }
    }
    const name = params.name ??
      generateVmName(new Set(rows.map((r) => r.name)));
    const cidr = parseCidr(config.cidr);
    const used = new Set(rows.map((r) => parseIpv4(r.ip)));
    used.add(parseIpv4(config.bridgeIp));
    let index = 0;
    for (let i = 2; i < cidr.size - 1; i++) {
      if (!used.has(cidr.network + i)) {
        index = i;
        break;
      }
    }
    if (index === 0) {
      throw new RpcError(
        "operation_failed",
        `Cannot create VM "${name}": every address in ${config.cidr} is taken`,
      );
    }
    const d = config.vmDefaults;
    // `vm run` sends the defaults it showed the user; a value equal to the
    // default is explained by the default's source, not by a flag.
    const from = (given: number | undefined, def: Sourced<number>) =>
      given === undefined || given === def.value ? def.from : "flag";
    const specFrom: SpecFrom = {
      vcpu: from(params.vcpu, d.vcpu),
      memory: from(params.memoryMib, d.memoryMib),
      disk: from(params.diskMib, d.diskMib),
    };
    const now = this.#iso();
    const row: VmRow = {
      id: randomId(),
      name,
      state: "creating",
      image: params.image ?? config.defaultImage,
      vmm: this.o.vmm.name,
      ip: formatIpv4(cidr.network + index),
      tap: `bgtap${index}`,
      vcpu: params.vcpu ?? d.vcpu.value,
      memory_mib: params.memoryMib ?? d.memoryMib.value,
      disk_mib: params.diskMib ?? d.diskMib.value,
      pid: null,
      workspace: params.workspace ?? null,
      kernel: params.kernel ?? null,
      nat: params.nat ? 1 : 0,
      created_at: now,
      updated_at: now,
      handles: null,
      spec_from: JSON.stringify(specFrom),
      last_active_at: now,
    };
    db.insertVm(row);
    return row;
  }

  /** The VM keeps one ssh host key for life, so known_hosts stays valid. */
  async #ensureHostKey(row: VmRow, dir: string): Promise<void> {
    const hostKey = join(dir, VM_FILES.hostKey);
    if (!(await fileExists(hostKey))) {
      await generateHostKey(hostKey, `${row.name}.vm`);
    }
  }

  async #writeSeed(row: VmRow, dir: string): Promise<void> {
    await writeSeedDisk(join(dir, VM_FILES.seed), {
      hostname: row.name,
      mac: macFor(row.ip),
      address: row.ip,
      prefix: parseCidr(this.o.config.cidr).prefix,
      gateway: this.o.config.bridgeIp,
      dns: this.o.config.defaultDns,
      authorizedKey: await Deno.readTextFile(`${this.o.ssh.key}.pub`),
      hostKeyPath: join(dir, VM_FILES.hostKey),
    });
  }

  /** The VM's control socket, fixed by its address slot. */
  #controlSocket(row: VmRow): string {
    return vmmSocket(
      this.o.paths,
      hostIndex(parseCidr(this.o.config.cidr), parseIpv4(row.ip)),
    );
  }

  #dir(id: string): string {
    return join(this.o.paths.vmsDir, id);
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }

  #info(row: VmRow): VmInfo {
    return vmInfo(row, this.#dir(row.id));
  }
}

/** Times the stages of a create or start and reports them as progress. */
class StageClock {
  readonly timings: Record<string, number> = {};
  #start = performance.now();
  constructor(
    private readonly ctx: Ctx,
    private readonly failAfter: CreateStage | undefined,
  ) {}

  stage(name: CreateStage, detail?: string): void {
    this.ctx.progress(name, detail);
    this.#start = performance.now();
  }

  done(name: CreateStage): void {
    this.timings[name] = Math.round(performance.now() - this.#start);
    if (this.failAfter === name) {
      throw new Error(`Injected failure after stage "${name}"`);
    }
  }
}

/**
 * The guest kernel's command line. The root disk is found by its label
 * where an initrd can resolve labels; a kernel booted without one (built
 * with its drivers in) gets the device, which is always the first drive.
 */
export function kernelCmdline(withInitrd = true): string[] {
  return [
    "console=ttyS0",
    withInitrd ? `root=LABEL=${ROOT_LABEL}` : "root=/dev/vda",
    "rw",
    "panic=-1",
    "net.ifnames=0",
  ];
}

/** A locally administered MAC derived from the guest's address. */
export function macFor(ip: string): string {
  const value = parseIpv4(ip);
  const bytes = [
    0x52,
    0x54,
    0x00,
    (value >>> 16) & 0xff,
    (value >>> 8) & 0xff,
    value & 0xff,
  ];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}

function randomId(): string {
  return [...crypto.getRandomValues(new Uint8Array(6))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

function withCleanup(error: unknown, failures: string[]): unknown {
  if (failures.length === 0) return error;
  const message = `${(error as Error).message}; cleanup also failed: ${
    failures.join("; ")
  }`;
  return error instanceof RpcError
    ? new RpcError(error.code, message, error.op)
    : new Error(message, { cause: error });
}

function parseSpecFromText(text: string | null | undefined): SpecFrom {
  try {
    return text ? JSON.parse(text) as SpecFrom : {} as SpecFrom;
  } catch {
    return {} as SpecFrom;
  }
}

async function waitUntil(
  condition: () => Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return true;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return await condition();
}

async function fileExists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function removeFile(path: string): Promise<void> {
  await Deno.remove(path).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

async function removeDir(path: string): Promise<void> {
  await Deno.remove(path, { recursive: true }).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
}

/** The last console lines, to say why a guest died while booting. */
async function consoleTail(path: string): Promise<string> {
  const text = await Deno.readTextFile(path).catch(() => "");
  const lines = text.trimEnd().split("\n").slice(-5).join("\n").trim();
  return lines ? `; last console lines:\n${lines}` : "";
}

function mib(bytes: number): number {
  return Math.round(bytes / 1024 / 1024 * 10) / 10;
}
