/**
 * The VM lifecycle service: create (with rollback), list, delete and
 * reconcile. It owns the vms table, the VM directories and the per-VM
 * locks; images come from the image service and host changes go through
 * the helper seam.
 *
 * Lock order: a VM's lock is taken before any image build is awaited;
 * no code holds two VM locks at once.
 *
 * @module
 */
import { join } from "node:path";
import type { Config } from "../config.ts";
import { type Paths, vmmSocket } from "../paths.ts";
import {
  type BatchResult,
  type VmCreateParams,
  type VmInfo,
  VmNameSchema,
} from "../protocol/daemon.ts";
import { RpcError } from "../protocol/envelope.ts";
import type { HandlerContext } from "../rpc/server.ts";
import { generateHostKey } from "../ssh/keys.ts";
import { removeKnownHosts } from "../ssh/known_hosts.ts";
import { hostAlias, type SshIdentity } from "../ssh/options.ts";
import { formatIpv4, hostIndex, parseCidr, parseIpv4 } from "../util/ipv4.ts";
import type { Logger } from "../util/log.ts";
import { KeyedMutex } from "../util/mutex.ts";
import { generateVmName } from "../util/names.ts";
import type { VmmDriver, VmmHandles } from "../vmm/types.ts";
import { type StateDb, vmInfo, type VmRow } from "./db.ts";
import {
  createRootCopy,
  createRootOverlay,
  createWorkDisk,
  VM_FILES,
  writeSeedDisk,
} from "./disks.ts";
import type { HostNetwork } from "./host_network.ts";
import type { ImageService } from "./images.ts";
import type { KernelService } from "./kernels.ts";
import { waitForGuest } from "./guest_wait.ts";
import { ROOT_LABEL } from "../image/guest_files.ts";

/** Stages of a create, in order, as users see them in progress output. */
export const CREATE_STAGES = [
  "image",
  "disks",
  "network",
  "vmm",
  "boot",
  "ssh",
] as const;
export type CreateStage = typeof CREATE_STAGES[number];

/** Dependencies of {@linkcode VmService}. */
export interface VmServiceOptions {
  db: StateDb;
  paths: Paths;
  config: Config;
  images: ImageService;
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
}

/** A step that undoes part of a create. */
type Undo = { what: string; run: () => Promise<unknown> };

/** Owns VM state, directories and locks. */
export class VmService {
  readonly #locks = new KeyedMutex();
  constructor(private readonly o: VmServiceOptions) {}

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

  /**
   * Creates and boots a VM, reporting each stage. A failure before the VMM
   * runs undoes every step and leaves no row, disk or tap; an ssh timeout
   * leaves the running VM for inspection.
   */
  async create(
    params: VmCreateParams,
    ctx: Pick<HandlerContext, "progress" | "log">,
  ): Promise<{ vm: VmInfo; timings: Record<string, number> }> {
    // An unknown kernel is refused before anything exists.
    const kernel = params.kernel === undefined
      ? undefined
      : await this.#kernel(params.kernel);
    const row = this.#reserve(params);
    const dir = this.#dir(row.id);
    const undo: Undo[] = [{
      what: "remove the VM record",
      run: () => Promise.resolve(this.o.db.deleteVm(row.id)),
    }];
    const timings: Record<string, number> = {};
    let stageStart = performance.now();
    const stage = (name: CreateStage, detail?: string) => {
      ctx.progress(name, detail);
      stageStart = performance.now();
    };
    const done = (name: CreateStage) => {
      timings[name] = Math.round(performance.now() - stageStart);
      if (this.o.failAfterStage === name) {
        throw new Error(`Injected failure after stage "${name}"`);
      }
    };
    const log = ctx.log.with({ vm: row.name, id: row.id });

    return await this.#locks.run(row.id, async () => {
      let handles: VmmHandles | undefined;
      try {
        stage("image", row.image);
        const image = await this.o.images.ensure(
          row.image,
          (detail) => ctx.progress("image", detail),
        );
        done("image");

        stage("disks");
        await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
        undo.push({
          what: "remove the VM directory",
          run: () => Deno.remove(dir, { recursive: true }),
        });
        const rawRoot = this.o.vmm.rootFormat === "raw";
        const rootPath = join(dir, rawRoot ? VM_FILES.rootRaw : VM_FILES.root);
        if (rawRoot) await createRootCopy(image.rootfs, rootPath);
        else await createRootOverlay(image.rootfs, rootPath);
        await createWorkDisk(
          join(dir, VM_FILES.work),
          row.disk_mib,
          image.rootSkeleton,
        );
        await this.#writeSeed(row, dir);
        done("disks");

        stage("network", row.tap);
        const cidr = parseCidr(this.o.config.cidr);
        await this.o.network.ensureBridge(
          this.o.config.bridgeName,
          this.o.config.bridgeIp,
          cidr.prefix,
        );
        undo.push({
          what: `delete tap "${row.tap}"`,
          run: () => this.o.network.deleteTap(row.tap),
        });
        await this.o.network.createTap(
          row.tap,
          this.o.config.bridgeName,
          this.o.ownerUid,
        );
        done("network");

        stage("vmm", this.o.vmm.name);
        const controlSocket = this.#controlSocket(row);
        const release = this.o.vmm.release?.bind(this.o.vmm);
        if (release) {
          undo.push({
            what: "release the VMM's files",
            run: () => release(row.id, dir, controlSocket),
          });
        }
        handles = await this.o.vmm.launch({
          id: row.id,
          name: row.name,
          vcpu: row.vcpu,
          memoryMib: row.memory_mib,
          // TODO: the kernel choice is not stored with the VM yet; a
          // restart command will need it in the vms table.
          kernel: kernel?.vmlinux ?? image.kernel,
          initrd: kernel ? kernel.initrdPath : image.initrd,
          cmdline: kernelCmdline(),
          drives: [
            {
              id: "root",
              path: rootPath,
              format: rawRoot ? "raw" : "qcow2",
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
          controlSocket,
          consoleLog: join(dir, VM_FILES.console),
        });
        const launched = handles;
        undo.push({
          what: "stop the VMM",
          run: () => this.o.vmm.terminate(launched, dir),
        });
        // The handles file is written before the database changes so that
        // a crash in between still leaves a way to find the VMM.
        await writeHandles(dir, { ...handles, tap: row.tap, ip: row.ip });
        this.o.db.updateVm(row.id, { state: "running", pid: handles.pid });
        log.info("vmm started", { pid: handles.pid });
        done("vmm");
      } catch (error) {
        const failures = await runAll(undo.reverse());
        log.warn("create failed, rolled back", {
          error: String(error),
          cleanup: failures,
        });
        throw withCleanup(error, failures);
      }

      stage("boot");
      const wait = await waitForGuest({
        name: row.name,
        ip: row.ip,
        consoleLog: join(dir, VM_FILES.console),
        ssh: this.o.ssh,
        timeoutMs: this.o.sshTimeoutMs,
        alive: () => this.o.vmm.isAlive(handles!, dir),
        onBoot: () => {
          timings.boot = Math.round(performance.now() - stageStart);
          stage("ssh");
        },
      });
      if (!wait.ok) {
        log.warn("guest did not answer", { reason: wait.reason });
        throw new RpcError("operation_failed", wait.message);
      }
      timings[timings.boot === undefined ? "boot" : "ssh"] = Math.round(
        performance.now() - stageStart,
      );
      log.info("ready", { timings });
      return { vm: this.get(row.id), timings };
    });
  }

  /**
   * Deletes VMs: resolved once, de-duplicated, run concurrently and
   * reported in the order given. Each VM's cleanup runs every step even
   * when one fails; the VM's record stays (state "error") until all pass.
   */
  async delete(refs: string[], log: Logger): Promise<BatchResult> {
    const resolved = refs.map((ref) => {
      try {
        return { ref, row: this.resolve(ref) };
      } catch (error) {
        return { ref, error: error as RpcError };
      }
    });
    const byId = new Map<string, Promise<void>>();
    for (const r of resolved) {
      if ("row" in r && r.row && !byId.has(r.row.id)) {
        const id = r.row.id;
        byId.set(id, this.#locks.run(id, () => this.#destroy(id, log)));
      }
    }
    const results: BatchResult = [];
    for (const r of resolved) {
      if ("error" in r && r.error) {
        results.push({
          ref: r.ref,
          ok: false,
          error: { code: r.error.code, message: r.error.message },
        });
        continue;
      }
      try {
        await byId.get(r.row!.id);
        results.push({ ref: r.ref, ok: true });
      } catch (error) {
        results.push({
          ref: r.ref,
          ok: false,
          error: {
            code: "operation_failed",
            message: (error as Error).message,
          },
        });
      }
    }
    return results;
  }

  async #destroy(id: string, log: Logger): Promise<void> {
    const row = this.o.db.vmById(id);
    if (!row) return;
    const dir = this.#dir(id);
    const handles = await readHandles(dir).catch(() => undefined);
    const failures = await runAll([
      {
        what: "stop the VMM",
        run: async () => {
          const pid = handles?.pid ?? row.pid;
          if (pid) {
            await this.o.vmm.terminate(
              handles ?? { vmm: row.vmm, pid, controlSocket: "" },
              dir,
            );
          }
        },
      },
      {
        what: "release the VMM's files",
        run: async () => {
          await this.o.vmm.release?.(row.id, dir, this.#controlSocket(row));
        },
      },
      {
        what: `delete tap "${row.tap}"`,
        run: () => this.o.network.deleteTap(row.tap),
      },
      {
        what: "remove the VM directory",
        run: () =>
          Deno.remove(dir, { recursive: true }).catch((e) => {
            if (!(e instanceof Deno.errors.NotFound)) throw e;
          }),
      },
      {
        what: "forget the VM's host key",
        run: () =>
          removeKnownHosts(this.o.ssh.knownHosts, [
            hostAlias(row.name),
            row.ip,
          ]),
      },
    ]);
    if (failures.length > 0) {
      this.o.db.updateVm(id, { state: "error" });
      log.warn("delete incomplete", { vm: row.name, failures });
      throw new Error(
        `Cannot delete VM "${row.name}" completely: ${failures.join("; ")}`,
      );
    }
    this.o.db.deleteVm(id);
    log.info("deleted", { vm: row.name, id });
  }

  /**
   * Brings the database in line with reality after a daemon start: running
   * VMs whose VMM is alive are adopted; dead ones are cleaned up from their
   * durable state and marked stopped; half-made creates are removed.
   */
  async reconcile(log: Logger): Promise<void> {
    for (const row of this.o.db.listVms()) {
      if (row.state !== "running" && row.state !== "creating") continue;
      const dir = this.#dir(row.id);
      const handles = await readHandles(dir).catch(() => undefined);
      const pid = handles?.pid ?? row.pid;
      const alive = pid
        ? await this.o.vmm.isAlive(
          handles ?? { vmm: row.vmm, pid, controlSocket: "" },
          dir,
        )
        : false;
      if (alive && row.state === "running") {
        log.info("adopted running VM", { vm: row.name, pid });
        continue;
      }
      if (row.state === "creating") {
        log.warn("removing VM left half-made by a crash", { vm: row.name });
        await this.#destroy(row.id, log).catch((e) =>
          log.warn("cleanup failed", { vm: row.name, error: String(e) })
        );
        continue;
      }
      const failures = await runAll([
        {
          what: "release the VMM's files",
          run: async () => {
            await this.o.vmm.release?.(row.id, dir, this.#controlSocket(row));
          },
        },
        {
          what: `delete tap "${row.tap}"`,
          run: () => this.o.network.deleteTap(row.tap),
        },
      ]);
      this.o.db.updateVm(row.id, {
        state: failures.length ? "error" : "stopped",
        pid: null,
      });
      log.info("VM found dead, marked stopped", { vm: row.name, failures });
    }
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
      VmNameSchema.parse(params.name);
      const existing = db.vmByName(params.name);
      if (existing) {
        throw new RpcError(
          "already_exists",
          `Cannot create VM "${params.name}": name is already taken by a ${existing.state} VM`,
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
    const now = new Date().toISOString();
    const row: VmRow = {
      id: randomId(),
      name,
      state: "creating",
      image: params.image ?? config.defaultImage,
      vmm: this.o.vmm.name,
      ip: formatIpv4(cidr.network + index),
      tap: `bgtap${index}`,
      vcpu: params.vcpu ?? config.vmDefaults.vcpu.value,
      memory_mib: params.memoryMib ?? config.vmDefaults.memoryMib.value,
      disk_mib: params.diskMib ?? config.vmDefaults.diskMib.value,
      pid: null,
      workspace: params.workspace ?? null,
      created_at: now,
      updated_at: now,
    };
    db.insertVm(row);
    return row;
  }

  async #writeSeed(row: VmRow, dir: string): Promise<void> {
    const hostKey = join(dir, VM_FILES.hostKey);
    await generateHostKey(hostKey, `${row.name}.vm`);
    await writeSeedDisk(join(dir, VM_FILES.seed), {
      hostname: row.name,
      mac: macFor(row.ip),
      address: row.ip,
      prefix: parseCidr(this.o.config.cidr).prefix,
      gateway: this.o.config.bridgeIp,
      dns: this.o.config.defaultDns,
      authorizedKey: await Deno.readTextFile(`${this.o.ssh.key}.pub`),
      hostKeyPath: hostKey,
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

  #info(row: VmRow): VmInfo {
    return vmInfo(row, this.#dir(row.id));
  }
}

/** The kernel command line every banger guest boots with. */
export function kernelCmdline(): string[] {
  return [
    "console=ttyS0",
    `root=LABEL=${ROOT_LABEL}`,
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

/** Runs every step, collecting "what: why" for each that fails. */
export async function runAll(steps: Undo[]): Promise<string[]> {
  const failures: string[] = [];
  for (const step of steps) {
    try {
      await step.run();
    } catch (error) {
      failures.push(`${step.what}: ${(error as Error).message ?? error}`);
    }
  }
  return failures;
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

/** Durable handles of a running VM, kept in its directory. */
export interface HandlesFile extends VmmHandles {
  tap: string;
  ip: string;
}

async function writeHandles(dir: string, handles: HandlesFile): Promise<void> {
  const path = join(dir, VM_FILES.handles);
  const temp = `${path}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(handles) + "\n", {
    mode: 0o600,
  });
  await Deno.rename(temp, path);
}

async function readHandles(dir: string): Promise<HandlesFile> {
  const parsed = JSON.parse(
    await Deno.readTextFile(join(dir, VM_FILES.handles)),
  ) as HandlesFile;
  if (!Number.isInteger(parsed.pid) || parsed.pid <= 0) {
    throw new Error("handles file has no valid pid");
  }
  return parsed;
}
