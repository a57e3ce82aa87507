/**
 * The validation contract of Firecracker's API: routes, their body
 * definitions and phases, and the definitions' JSON schemas, extracted from
 * Firecracker's published Swagger file with its prose (descriptions,
 * examples) left out.
 *
 * `api_contract.json` beside this file is that extraction for the version
 * banger is written against, so that tests and the stand-in need nothing
 * outside the repository. `tests/integration/firecracker_contract_test.ts`
 * checks that it still equals a fresh extraction whenever the Swagger file
 * is at hand. To refresh it:
 *
 * ```sh
 * deno run --allow-read --allow-write tests/firecracker_standin/contract.ts \
 *   path/to/firecracker-vX.Y.Z-api.yaml
 * ```
 *
 * @module
 */
import { load } from "js-yaml";
import { dirname, join } from "node:path";

/** The Swagger file the committed contract was extracted from. */
export const SWAGGER_FILE = "firecracker-v1.14.1-api.yaml";

/** The committed contract. */
export const CONTRACT_FILE = new URL("./api_contract.json", import.meta.url)
  .pathname;

/** When a route may be called, from its Swagger summary. */
export type Phase = "pre-boot" | "post-boot" | "any";

/** One method on one path. */
export interface ContractRoute {
  method: string;
  /** The path template, e.g. `/drives/{drive_id}`. */
  template: string;
  /** Definition name of the body, if the route takes one. */
  body: string | null;
  bodyRequired: boolean;
  phase: Phase;
}

/** What the stand-in and the contract tests validate requests against. */
export interface Contract {
  source: string;
  version: string;
  routes: ContractRoute[];
  definitions: Record<string, unknown>;
}

interface SwaggerDoc {
  paths: Record<string, Record<string, SwaggerOperation>>;
  definitions: Record<string, unknown>;
  info: { version: string };
}
interface SwaggerOperation {
  summary?: string;
  parameters?: {
    in: string;
    required?: boolean;
    schema?: { $ref?: string };
  }[];
}

/** Schema keywords that are prose for readers, not constraints. */
const PROSE_KEYWORDS = new Set(["description", "example", "title"]);

/** Extracts the contract from a Swagger 2.0 document's text. */
export function extractContract(swaggerText: string, source: string): Contract {
  const doc = load(swaggerText) as SwaggerDoc;
  const routes: ContractRoute[] = [];
  for (const [template, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const body = operation.parameters?.find((p) => p.in === "body");
      const summary = operation.summary ?? "";
      routes.push({
        method: method.toUpperCase(),
        template,
        body: body?.schema?.$ref?.replace("#/definitions/", "") ?? null,
        bodyRequired: body?.required === true,
        phase: /pre-boot only/i.test(summary)
          ? "pre-boot"
          : /post-boot only/i.test(summary)
          ? "post-boot"
          : "any",
      });
    }
  }
  const definitions = Object.fromEntries(
    Object.entries(doc.definitions).map(([name, schema]) => [
      name,
      withoutProse(schema),
    ]),
  );
  return { source, version: doc.info.version, routes, definitions };
}

/**
 * A copy of a schema node without its prose keywords. Property names under
 * `properties` are data, not keywords, and are all kept.
 */
function withoutProse(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutProse);
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (PROSE_KEYWORDS.has(key)) continue;
    out[key] = key === "properties"
      ? Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map((
          [name, schema],
        ) => [name, withoutProse(schema)]),
      )
      : withoutProse(value);
  }
  return out;
}

/** Reads the committed contract. */
export function loadContract(path = CONTRACT_FILE): Contract {
  return JSON.parse(Deno.readTextFileSync(path)) as Contract;
}

/**
 * The Swagger file, when this checkout has it at hand: `BANGER_FC_SCHEMA`,
 * else a `shared/reference/<SWAGGER_FILE>` found walking up from here.
 */
export function findSwaggerFile(): string | undefined {
  const override = Deno.env.get("BANGER_FC_SCHEMA");
  if (override) return override;
  let dir = dirname(new URL(import.meta.url).pathname);
  while (dir !== "/") {
    const candidate = join(dir, "shared/reference", SWAGGER_FILE);
    try {
      Deno.statSync(candidate);
      return candidate;
    } catch {
      dir = dirname(dir);
    }
  }
  return undefined;
}

if (import.meta.main) {
  const [path] = Deno.args;
  if (!path) {
    console.error("usage: contract.ts <firecracker-api.yaml>");
    Deno.exit(2);
  }
  const name = path.split("/").pop()!;
  const contract = extractContract(await Deno.readTextFile(path), name);
  await Deno.writeTextFile(
    CONTRACT_FILE,
    JSON.stringify(contract, null, 2) + "\n",
  );
  console.log(
    `wrote ${CONTRACT_FILE}: ${contract.routes.length} routes, ${
      Object.keys(contract.definitions).length
    } definitions (Firecracker ${contract.version})`,
  );
}
