// How an option is declared: once, as an entry of a table keyed by its command-line name. The CLI's
// yargs options, the spec file's field checks and the typed input of the parsers all come from it.

export type OptionDeclaration = { describe: string; alias?: string } & (
  | { type: 'string' }
  /** Repeatable: every occurrence is kept, in order. */
  | { type: 'strings' }
  /** Repeatable whole numbers: text on the command line (checked strictly by the parser), numbers in a spec. */
  | { type: 'numbers' }
  /** One whole number: text on the command line (checked strictly by the parser), a number in a spec. */
  | { type: 'number' }
  /** Repeatable NAME VALUE pairs (`--arg NAME EXPR`): two words on the command line, an object in a spec. */
  | { type: 'pairs' }
  | { type: 'boolean'; default: boolean }
  | { type: 'choice'; choices: readonly string[]; default: string }
) & {
    /** A boolean option this one means nothing without (`key` needs `sign`). */
    needs?: string
  }

export type OptionTable = Record<string, OptionDeclaration>

/** `image-version` -> `imageVersion`: the spec field and the parsed argument, as yargs names it. */
export type FieldName<Option extends string> = Option extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<FieldName<Tail>>}`
  : Option

export function fieldName<Option extends string>(option: Option): FieldName<Option> {
  return option.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()) as FieldName<Option>
}

export type OptionValue<D extends OptionDeclaration> = D extends { type: 'string' }
  ? string
  : D extends { type: 'strings' }
    ? string[]
    : D extends { type: 'numbers' }
      ? Array<string | number>
      : D extends { type: 'number' }
        ? string | number
        : D extends { type: 'pairs' }
          ? string[] | Record<string, string>
          : D extends { type: 'boolean' }
            ? boolean
            : D extends { choices: readonly (infer Choice)[] }
              ? Choice
              : never

/** What the user gave, by field name; an option not given is absent. */
export type OptionValues<Table extends OptionTable> = {
  [Option in keyof Table & string as FieldName<Option>]?: OptionValue<Table[Option]>
}

/** The first option given without the one it needs, as `[option, needed]`. */
export function unmetNeed(table: OptionTable, values: Record<string, unknown>): [string, string] | undefined {
  for (const [option, declaration] of Object.entries(table)) {
    const { needs } = declaration
    if (needs !== undefined && values[fieldName(option)] !== undefined && values[fieldName(needs)] !== true)
      return [option, needs]
  }
  return undefined
}
