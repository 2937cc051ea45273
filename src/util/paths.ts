import { relative } from 'node:path'

/** A path as a user would type it from here: relative below the current directory, else absolute. */
export function displayPath(path: string): string {
  const fromHere = relative(process.cwd(), path)
  return fromHere === '' || fromHere.startsWith('..') ? path : fromHere
}
