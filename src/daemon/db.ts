/**
 * The daemon's durable state in SQLite (`node:sqlite`): WAL mode, a
 * migrations table, forward-only migrations.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import type { VmInfo, VmState } from "../protocol/daemon.ts";

/** Forward-only schema migrations; index + 1 is the version. */
const MIGRATIONS: string[] = [
  `CREATE TABLE images (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     dir TEXT NOT NULL,
     kernel_release TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE vms (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     state TEXT NOT NULL,
     image TEXT NOT NULL,
     vmm TEXT NOT NULL,
     ip TEXT NOT NULL UNIQUE,
     tap TEXT NOT NULL UNIQUE,
     vcpu INTEGER NOT NULL,
     memory_mib INTEGER NOT NULL,
     disk_mib INTEGER NOT NULL,
     pid INTEGER,
     workspace TEXT,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );`,
  // The handles mirror lets cleanup find a VM's VMM and tap when its
  // handles file is lost; spec_from records where each size came from;
  // last_active_at feeds auto_stop_stale_after.
  `ALTER TABLE vms ADD COLUMN handles TEXT;
   ALTER TABLE vms ADD COLUMN spec_from TEXT;
   ALTER TABLE vms ADD COLUMN last_active_at TEXT;`,
  // 3: opt-in NAT (`vm run --nat`), kept so stop/start and reconcile can
  // restore or remove the guest's rules.
  `ALTER TABLE vms ADD COLUMN nat INTEGER NOT NULL DEFAULT 0;`,
  // 4: an imported kernel booted instead of the image's (`--kernel`), kept
  // so that start and restart boot the same one.
  `ALTER TABLE vms ADD COLUMN kernel TEXT;`,
];

/** A VM row as stored. */
export interface VmRow {
  id: string;
  name: string;
  state: VmState;
  image: string;
  vmm: string;
  ip: string;
  tap: string;
  vcpu: number;
  memory_mib: number;
  disk_mib: number;
  pid: number | null;
  workspace: string | null;
  /** 1 when the guest has NAT (`--nat`), else 0. */
  nat: number;
  created_at: string;
  updated_at: string;
  /** JSON of the durable handles while the VM holds host resources. */
  handles?: string | null;
  /** JSON of {@linkcode SpecFrom}. */
  spec_from?: string | null;
  last_active_at?: string | null;
  /** The imported kernel's name, or null for the image's kernel. */
  kernel?: string | null;
}

/** Where a VM's vcpu, memory and disk values came from. */
export type SpecFrom = Record<"vcpu" | "memory" | "disk", string>;

/** An image row as stored. */
export interface ImageRow {
  id: string;
  name: string;
  dir: string;
  kernel_release: string;
  created_at: string;
}

/** The state database. */
export class StateDb {
  readonly db: DatabaseSync;

  /** Opens (creating) the database at `path` and applies migrations. */
  constructor(path: string) {
    this.db = new DatabaseSync(path);
    this.db.exec("PRAGMA journal_mode = WAL");
    this.db.exec("PRAGMA busy_timeout = 5000");
    this.db.exec("PRAGMA foreign_keys = ON");
    this.migrate();
  }

  /** The schema version after migrations. */
  get version(): number {
    const row = this.db.prepare(
      "SELECT MAX(version) AS v FROM schema_migrations",
    ).get() as { v: number | null };
    return row.v ?? 0;
  }

  private migrate(): void {
    this.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      applied_at TEXT NOT NULL
    )`);
    const current = this.version;
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      this.transaction(() => {
        this.db.exec(MIGRATIONS[v - 1]!);
        this.db.prepare(
          "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
        ).run(v, new Date().toISOString());
      });
    }
  }

  /** Runs `fn` in a transaction, rolling back when it throws. */
  transaction<T>(fn: () => T): T {
    this.db.exec("BEGIN IMMEDIATE");
    try {
      const result = fn();
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      this.db.exec("ROLLBACK");
      throw error;
    }
  }

  listVms(): VmRow[] {
    return this.db.prepare("SELECT * FROM vms ORDER BY created_at, name")
      .all() as unknown as VmRow[];
  }

  vmByName(name: string): VmRow | undefined {
    return this.db.prepare("SELECT * FROM vms WHERE name = ?").get(name) as
      | VmRow
      | undefined;
  }

  vmById(id: string): VmRow | undefined {
    return this.db.prepare("SELECT * FROM vms WHERE id = ?").get(id) as
      | VmRow
      | undefined;
  }

  insertVm(row: VmRow): void {
    this.db.prepare(
      `INSERT INTO vms (id, name, state, image, vmm, ip, tap, vcpu, memory_mib,
         disk_mib, pid, workspace, created_at, updated_at, handles, spec_from,
         last_active_at, nat, kernel)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      row.id,
      row.name,
      row.state,
      row.image,
      row.vmm,
      row.ip,
      row.tap,
      row.vcpu,
      row.memory_mib,
      row.disk_mib,
      row.pid,
      row.workspace,
      row.created_at,
      row.updated_at,
      row.handles ?? null,
      row.spec_from ?? null,
      row.last_active_at ?? null,
      row.nat,
      row.kernel ?? null,
    );
  }

  updateVm(
    id: string,
    fields: Partial<
      Pick<
        VmRow,
        | "state"
        | "pid"
        | "workspace"
        | "handles"
        | "vcpu"
        | "memory_mib"
        | "last_active_at"
      >
    >,
  ): void {
    const keys = Object.keys(fields) as (keyof typeof fields)[];
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${k} = ?`).join(", ");
    this.db.prepare(`UPDATE vms SET ${sets}, updated_at = ? WHERE id = ?`).run(
      ...keys.map((k) => fields[k] ?? null),
      new Date().toISOString(),
      id,
    );
  }

  deleteVm(id: string): void {
    this.db.prepare("DELETE FROM vms WHERE id = ?").run(id);
  }

  listImages(): ImageRow[] {
    return this.db.prepare("SELECT * FROM images ORDER BY name")
      .all() as unknown as ImageRow[];
  }

  imageByName(name: string): ImageRow | undefined {
    return this.db.prepare("SELECT * FROM images WHERE name = ?").get(name) as
      | ImageRow
      | undefined;
  }

  insertImage(row: ImageRow): void {
    this.db.prepare(
      "INSERT INTO images (id, name, dir, kernel_release, created_at) VALUES (?, ?, ?, ?, ?)",
    ).run(row.id, row.name, row.dir, row.kernel_release, row.created_at);
  }

  close(): void {
    this.db.close();
  }
}

/** Converts a row to what the protocol sends. */
export function vmInfo(row: VmRow, dir: string): VmInfo {
  return {
    id: row.id,
    name: row.name,
    state: row.state,
    image: row.image,
    vmm: row.vmm,
    ip: row.ip,
    tap: row.tap,
    vcpu: row.vcpu,
    memoryMib: row.memory_mib,
    diskMib: row.disk_mib,
    pid: row.pid,
    workspace: row.workspace,
    nat: row.nat === 1,
    kernel: row.kernel ?? null,
    createdAt: row.created_at,
    dir,
    specFrom: parseSpecFrom(row.spec_from),
    lastActiveAt: row.last_active_at ?? null,
  };
}

function parseSpecFrom(text: string | null | undefined): SpecFrom | null {
  if (!text) return null;
  try {
    return JSON.parse(text) as SpecFrom;
  } catch {
    return null;
  }
}
