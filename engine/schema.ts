/**
 * Schemas as the plugin API sees them: any zod (v4) schema fits {@link Schema}, but the API's
 * public types name only these interfaces, so that cogflow's types stand on their own. The
 * helpers compute the values a schema gives, with zod's rules for optional keys.
 *
 * @module
 */

/** The part of a zod schema's internals that carries its types. */
export interface SchemaTypes<Output = unknown, Input = unknown> {
  /** The type of a parsed value. */
  readonly output: Output;
  /** The type of a value before parsing. */
  readonly input: Input;
  /** `"optional"` (or `"defaulted"`) when the key may be left out of an object's input. */
  readonly optin?: "optional" | "defaulted" | undefined;
  /** `"optional"` when the key may be missing from an object's output. */
  readonly optout?: "optional" | undefined;
}

/** One problem a schema found. */
export interface SchemaIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where, inside the value. */
  readonly path: readonly PropertyKey[];
}

/** What checking a value with a schema gives. */
export type SchemaResult<T> =
  | { readonly success: true; readonly data: T }
  | { readonly success: false; readonly error: { readonly issues: readonly SchemaIssue[] } };

/** A schema: a zod schema, seen through what cogflow uses of it. */
export interface Schema<Output = unknown, Input = unknown> {
  /** Zod's internals; cogflow reads only their types. */
  readonly _zod: SchemaTypes<Output, Input>;
  /** Checks a value without throwing. */
  safeParse(value: unknown): SchemaResult<Output>;
}

/** A schema whose key may be left out (zod's `.optional()`). */
export interface OptionalSchema<T> extends Schema<T | undefined, T | undefined> {
  /** Zod's internals, marked optional. */
  readonly _zod: SchemaTypes<T | undefined, T | undefined> & {
    readonly optin: "optional";
    readonly optout: "optional";
  };
  /** The same schema with a one-line description, for `cogflow nodes` and editors. */
  describe(description: string): OptionalSchema<T>;
}

/** A schema of a port value, which `.optional()` turns into a port that need not be connected. */
export interface PortSchema<T> extends Schema<T, T> {
  /** The same port, not required to be connected. */
  optional(): OptionalSchema<T>;
  /**
   * The same port with a one-line description (what it carries, with units), for `cogflow nodes`
   * and editors. It keeps the port's type and survives `.optional()`.
   */
  describe(description: string): PortSchema<T>;
}

/** The parsed value of a schema. */
export type OutputOf<S> = S extends { readonly _zod: { readonly output: infer O } } ? O : unknown;

/** The value a schema accepts before parsing. */
export type InputOf<S> = S extends { readonly _zod: { readonly input: infer I } } ? I : unknown;

/** The keys of a shape whose schemas may be missing from the output. */
export type OptionalOutputKeys<T> = {
  [K in keyof T]: T[K] extends { readonly _zod: { readonly optout: "optional" } } ? K : never;
}[keyof T];

/** The keys of a shape whose schemas may be left out of the input. */
export type OptionalInputKeys<T> = {
  [K in keyof T]: T[K] extends { readonly _zod: { readonly optin: "optional" | "defaulted" } } ? K
    : never;
}[keyof T];

/** An intersection of object types, shown as one object type. */
export type Simplify<T> = { [K in keyof T]: T[K] } & unknown;

/** The parsed object of a shape of schemas (zod's `z.output<z.ZodObject<shape>>`). */
export type ObjectOutput<T> = Simplify<
  & { [K in Exclude<keyof T, OptionalOutputKeys<T>>]: OutputOf<T[K]> }
  & { [K in OptionalOutputKeys<T>]?: OutputOf<T[K]> }
>;

/** The object a shape of schemas accepts (zod's `z.input<z.ZodObject<shape>>`). */
export type ObjectInput<T> = Simplify<
  & { [K in Exclude<keyof T, OptionalInputKeys<T>>]: InputOf<T[K]> }
  & { [K in OptionalInputKeys<T>]?: InputOf<T[K]> }
>;
