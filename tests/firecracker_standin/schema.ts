/**
 * Firecracker's published API schema (Swagger 2.0, YAML) turned into
 * request validators with a real JSON-schema validator (ajv).
 *
 * Firecracker deserializes every request body with serde's
 * `deny_unknown_fields`, which the Swagger file does not say; so every
 * object definition that lists its properties is closed here
 * (`additionalProperties: false`), and an unknown field is refused just as
 * Firecracker refuses it.
 *
 * Used by the contract tests and by the stand-in `firecracker`.
 *
 * @module
 */
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { load } from "js-yaml";
import { dirname, join } from "node:path";

/** The schema file banger's Firecracker driver is written against. */
export const SCHEMA_FILE = "firecracker-v1.14.1-api.yaml";

/**
 * Finds the schema: `BANGER_FC_SCHEMA` when set, else the first
 * `shared/reference/<SCHEMA_FILE>` found walking up from this file.
 */
export function findSchemaFile(): string {
  const override = Deno.env.get("BANGER_FC_SCHEMA");
  if (override) return override;
  let dir = dirname(new URL(import.meta.url).pathname);
  while (dir !== "/") {
    const candidate = join(dir, "shared/reference", SCHEMA_FILE);
    try {
      Deno.statSync(candidate);
      return candidate;
    } catch {
      dir = dirname(dir);
    }
  }
  throw new Error(
    `Cannot find "${SCHEMA_FILE}": set BANGER_FC_SCHEMA to its path`,
  );
}

/** A route of the API with the definition its body must match. */
export interface Route {
  method: string;
  /** The template, e.g. `/drives/{drive_id}`. */
  template: string;
  pattern: RegExp;
  /** Path parameter names in order. */
  params: string[];
  /** Definition name of the body, if the route takes one. */
  bodyDefinition: string | undefined;
  bodyRequired: boolean;
  /** From the schema's summary: "Pre-boot only." / "Post-boot only.". */
  phase: "pre-boot" | "post-boot" | "any";
}

/** The outcome of validating one request. */
export type Validation =
  | { ok: true; route: Route; params: Record<string, string> }
  | { ok: false; status: number; message: string };

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

/** Request validators for one schema document. */
export class ApiSchema {
  readonly version: string;
  readonly routes: Route[];
  readonly #validators = new Map<string, ValidateFunction>();

  constructor(yamlText: string) {
    const doc = load(yamlText) as SwaggerDoc;
    this.version = doc.info.version;
    const definitions = structuredClone(doc.definitions);
    for (const definition of Object.values(definitions)) {
      closeObjects(definition);
    }
    // Swagger annotations (example, readOnly…) are not validation keywords.
    const ajv = new Ajv({ strict: false, logger: false });
    ajv.addSchema({ $id: "firecracker", definitions });
    for (const name of Object.keys(definitions)) {
      this.#validators.set(
        name,
        ajv.getSchema(`firecracker#/definitions/${name}`)!,
      );
    }
    this.routes = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const body = operation.parameters?.find((p) => p.in === "body");
        const params = [...template.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
        const summary = operation.summary ?? "";
        this.routes.push({
          method: method.toUpperCase(),
          template,
          pattern: new RegExp(
            `^${template.replace(/\{\w+\}/g, "([^/]+)")}$`,
          ),
          params,
          bodyDefinition: body?.schema?.$ref?.replace("#/definitions/", ""),
          bodyRequired: body?.required === true,
          phase: /pre-boot only/i.test(summary)
            ? "pre-boot"
            : /post-boot only/i.test(summary)
            ? "post-boot"
            : "any",
        });
      }
    }
  }

  /** Loads the schema file (see {@linkcode findSchemaFile}). */
  static load(path = findSchemaFile()): ApiSchema {
    return new ApiSchema(Deno.readTextFileSync(path));
  }

  /** Checks `body` against the definition called `name`. */
  validateDefinition(name: string, body: unknown): string | undefined {
    const validate = this.#validators.get(name);
    if (!validate) return `no definition "${name}" in the schema`;
    return validate(body) ? undefined : describe(validate.errors ?? []);
  }

  /**
   * Checks a request: a known method and path, and a body that matches
   * the route's definition (unknown fields refused). Path parameters that
   * repeat a body field (`drive_id`, `iface_id`) must agree with it.
   */
  validateRequest(method: string, path: string, body: unknown): Validation {
    const candidates = this.routes.filter((r) => r.pattern.test(path));
    const route = candidates.find((r) => r.method === method);
    if (!route) {
      return {
        ok: false,
        status: candidates.length ? 405 : 400,
        message: `Invalid request method and/or path: ${method} ${path}.`,
      };
    }
    const match = path.match(route.pattern)!;
    const params = Object.fromEntries(
      route.params.map((name, i) => [name, decodeURIComponent(match[i + 1]!)]),
    );
    if (route.bodyDefinition) {
      if (body === undefined) {
        if (route.bodyRequired) {
          return { ok: false, status: 400, message: "Empty request body." };
        }
      } else {
        const problem = this.validateDefinition(route.bodyDefinition, body);
        if (problem) {
          return {
            ok: false,
            status: 400,
            message:
              `An error occurred when deserializing the json body of a request: ${problem}.`,
          };
        }
      }
    }
    for (const [name, value] of Object.entries(params)) {
      const field = (body as Record<string, unknown> | undefined)?.[name];
      if (field !== undefined && field !== value) {
        return {
          ok: false,
          status: 400,
          message: "The id from the path does not match the id from the body!",
        };
      }
    }
    return { ok: true, route, params };
  }
}

/** Adds `additionalProperties: false` to every object listing properties. */
function closeObjects(schema: unknown): void {
  if (schema === null || typeof schema !== "object") return;
  const node = schema as Record<string, unknown>;
  if (
    node.properties && typeof node.properties === "object" &&
    node.additionalProperties === undefined
  ) {
    node.additionalProperties = false;
  }
  for (const value of Object.values(node)) {
    if (Array.isArray(value)) value.forEach(closeObjects);
    else closeObjects(value);
  }
}

function describe(errors: ErrorObject[]): string {
  const e = errors[0];
  if (!e) return "invalid body";
  const where = e.instancePath || "body";
  if (e.keyword === "additionalProperties") {
    return `unknown field "${
      (e.params as { additionalProperty: string }).additionalProperty
    }" in ${where}`;
  }
  return `${where} ${e.message ?? "is invalid"}`;
}
