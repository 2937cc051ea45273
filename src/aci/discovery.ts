// The static appc discovery tree `nix2aci publish` writes (appc spec, discovery.md): where each image,
// signature, key and page lives under the folder served at the URL prefix, and what the pages say.
// Pure: names and labels in, paths and text out.
import { UserError } from '../util/errors.js'

export interface UrlPrefix {
  scheme: 'http' | 'https'
  /** The URL's host and path (`localhost/apps`): the names it serves lie under it. */
  namePrefix: string
}

/**
 * `--url-prefix http(s)://HOST[/PATH]`. Discovery fetches a name's page from the name itself (its
 * first part is the host), so a port, user, query or fragment could never be reached by a name.
 */
export function parseUrlPrefix(url: string): UrlPrefix {
  const refuse = (why: string) => new UserError(`--url-prefix '${url}': ${why}`)
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw refuse('not a URL; expected http(s)://HOST/PATH')
  }
  const scheme = parsed.protocol.slice(0, -1)
  if (scheme !== 'http' && scheme !== 'https') throw refuse('expected an http:// or https:// URL')
  if (parsed.port || parsed.username || parsed.password || parsed.search || parsed.hash)
    throw refuse('discovery reaches a name by its host and path alone: no port, user, query or fragment')
  const namePrefix = `${parsed.hostname}${parsed.pathname}`.replace(/\/+$/, '')
  return { scheme, namePrefix }
}

/** A name's path below the prefix (`localhost/apps/etcd` -> `etcd`), or undefined when it is not under it. */
export function pathUnderPrefix(name: string, namePrefix: string): string | undefined {
  return name.startsWith(`${namePrefix}/`) && name.length > namePrefix.length + 1
    ? name.slice(namePrefix.length + 1)
    : undefined
}

/**
 * The template's URL is `{name}` itself behind the scheme (`http://{name}-{version}-{os}-{arch}.{ext}`):
 * a name under the prefix then names a file at its own path below the folder, and the tree is the names'.
 */
function imageTemplate(prefix: UrlPrefix): string {
  return `${prefix.scheme}://{name}-{version}-{os}-{arch}.{ext}`
}

export const PUBKEYS_FILE = 'pubkeys.gpg'
export const PAGE_FILE = 'index.html'

/** Where the template puts an image, relative to the published folder. */
export function imageFileIn(relativeName: string, labels: { version: string; os: string; arch: string }): string {
  return `${relativeName}-${labels.version}-${labels.os}-${labels.arch}.aci`
}

/** The folders (relative; '' is the folder itself) whose page discovery may ask for first. */
export function pageFolders(relativeNames: readonly string[]): string[] {
  const folders = new Set([''])
  for (const name of relativeNames) {
    folders.add(name)
    // The name's parent too: a layer prefix's own page serves every layer below it.
    const parent = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : ''
    folders.add(parent)
  }
  return [...folders].sort()
}

/**
 * The page: meta tags for the whole prefix (discovery takes a tag whose prefix the name starts
 * with), the key's only when there is one, and links to the images so a person can browse them.
 */
export function discoveryPage(prefix: UrlPrefix, hasPubkeys: boolean, imageUrls: readonly string[]): string {
  const escape = (text: string) =>
    text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
  const base = `${prefix.scheme}://${prefix.namePrefix}`
  const lines = [
    '<!DOCTYPE html>',
    '<html>',
    '<head>',
    '<meta charset="utf-8">',
    `<title>${escape(prefix.namePrefix)}</title>`,
    `<meta name="ac-discovery" content="${escape(`${prefix.namePrefix} ${imageTemplate(prefix)}`)}">`,
    ...(hasPubkeys
      ? [`<meta name="ac-discovery-pubkeys" content="${escape(`${prefix.namePrefix} ${base}/${PUBKEYS_FILE}`)}">`]
      : []),
    '</head>',
    '<body>',
    `<h1>${escape(prefix.namePrefix)}</h1>`,
    '<ul>',
    ...imageUrls.map((url) => `<li><a href="${escape(url)}">${escape(url.slice(base.length + 1))}</a></li>`),
    '</ul>',
    '</body>',
    '</html>',
    '',
  ]
  return lines.join('\n')
}
