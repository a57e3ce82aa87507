/**
 * Worker entry: runs one role with the permissions main.ts gave the worker.
 *
 * @module
 */
import type { Launcher, Role } from "./roles.ts";

/** The message main.ts sends to start a role. */
export interface RoleStart {
  role: Role;
  args: string[];
  launcher: Launcher;
}

/** The message the worker sends back when the role is done. */
export interface WorkerExit {
  code: number;
}

declare const self: {
  onmessage: ((event: MessageEvent<RoleStart>) => void) | null;
  postMessage(message: WorkerExit): void;
};

self.onmessage = async (event) => {
  const { role, args, launcher } = event.data;
  let code = 1;
  try {
    if (role === "daemon") {
      const { daemonMain } = await import("./daemon/main.ts");
      code = await daemonMain(args.slice(1));
    } else if (role === "helper") {
      const { helperMain } = await import("./helper/main.ts");
      code = await helperMain(args.slice(1));
    } else {
      const { cliMain } = await import("./cli/main.ts");
      code = await cliMain(args, launcher);
    }
  } catch (error) {
    console.error(`banger: ${error instanceof Error ? error.message : error}`);
    code = 1;
  }
  self.postMessage({ code });
};
