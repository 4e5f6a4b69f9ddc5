// The README's code blocks, checked: every ```ts and ```tsx block is type-checked by the TypeScript compiler
// against the bindings' sources (the package name and its subpaths mapped to guest-js/), every ```svelte block
// compiled by the Svelte compiler. A problem is reported with the markdown file's own line and column.

import { compile } from 'svelte/compiler'
import ts from 'typescript'

// The file system through TypeScript's `ts.sys` (the package has no Node types).
/** The repository's root, with a trailing slash. */
export const ROOT = decodeURIComponent(new URL('../../', import.meta.url).pathname)

/**
 * What snippets may use without declaring it: placeholders for the app's own things. Keep it small; a snippet
 * that needs more than a name or two should declare it itself, where the reader sees it.
 */
export const PRELUDE = `
declare const token: string
declare function append(text: string): void
/** The app's TanStack Query client, as far as the README uses it. */
declare const queryClient: {
  invalidateQueries(filters?: { queryKey?: readonly unknown[] }): Promise<void>
}
`

export interface Block {
  lang: 'ts' | 'tsx' | 'svelte'
  /** The line of the block's first code line in the markdown file, 1-based. */
  line: number
  code: string
}

const CHECKED = new Set(['ts', 'tsx', 'svelte'])

/** The checked code blocks of a markdown text, fences at any indentation (a block inside a list item). */
export function blocks(markdown: string): Block[] {
  const lines = markdown.split('\n')
  const found: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!)
    if (!open) continue
    const [, indent, fence, lang] = open as unknown as [string, string, string, string]
    const body: string[] = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const line = lines[j]!
      if (line.trimStart().startsWith(fence) && line.trim() === fence.padEnd(line.trim().length, fence[0])) break
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart())
    }
    if (CHECKED.has(lang)) found.push({ lang: lang as Block['lang'], line: i + 2, code: body.join('\n') })
    i = j
  }
  return found
}

function compilerOptions(): ts.CompilerOptions {
  const configPath = `${ROOT}tsconfig.json`
  const config = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p))
  if (config.error) throw new Error(ts.flattenDiagnosticMessageText(config.error.messageText, '\n'))
  const parsed = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT)
  return {
    ...parsed.options,
    noEmit: true,
    declaration: false,
    // A snippet shows a call; what it defines need not be used.
    noUnusedLocals: false,
    noUnusedParameters: false,
    // Each block is a module of its own: names do not clash across blocks, and top-level await works.
    moduleDetection: ts.ModuleDetectionKind.Force,
    jsx: ts.JsxEmit.ReactJSX,
    baseUrl: ROOT,
    paths: {
      'tauri-plugin-realtime-api': ['guest-js/index.ts'],
      'tauri-plugin-realtime-api/*': ['guest-js/*.ts'],
    },
  }
}

function where(file: string, line: number, column: number): string {
  return `${file}:${line}:${column}`
}

function typeCheck(file: string, found: Block[]): string[] {
  const scripts = found.filter((b) => b.lang !== 'svelte')
  if (scripts.length === 0) return []
  const options = compilerOptions()
  // Virtual files beside the markdown file, so that relative imports in a snippet read as they would there.
  const virtual = new Map<string, { text: string; block?: Block }>()
  const preludePath = `${ROOT}__readme_prelude__.d.ts`
  virtual.set(preludePath, { text: PRELUDE })
  for (const block of scripts) {
    virtual.set(`${ROOT}__readme_line_${block.line}__.${block.lang}`, { text: block.code, block })
  }
  const host = ts.createCompilerHost(options, true)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (name, language, onError, create) => {
    const v = virtual.get(name)
    return v ? ts.createSourceFile(name, v.text, language, true) : getSourceFile(name, language, onError, create)
  }
  const fileExists = host.fileExists.bind(host)
  host.fileExists = (name) => virtual.has(name) || fileExists(name)
  const readFile = host.readFile.bind(host)
  host.readFile = (name) => virtual.get(name)?.text ?? readFile(name)
  const program = ts.createProgram([...virtual.keys()], options, host)

  const problems: string[] = []
  const flatten = (d: ts.Diagnostic) => ts.flattenDiagnosticMessageText(d.messageText, '\n')
  for (const d of [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics()]) {
    problems.push(`${file}: ${flatten(d)}`)
  }
  for (const [path, { block }] of virtual) {
    const source = program.getSourceFile(path)!
    const diagnostics = [...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source)]
    for (const d of diagnostics) {
      if (!block) {
        problems.push(`the README prelude (guest-js/tests/readme.ts): ${flatten(d)}`)
        continue
      }
      const { line, character } = source.getLineAndCharacterOfPosition(d.start ?? 0)
      problems.push(`${where(file, block.line + line, character + 1)}: ${block.lang} block: ${flatten(d)}`)
    }
  }
  return problems
}

function compileSvelte(file: string, block: Block): string[] {
  // The compiler's positions: lines from 1, columns from 0.
  const at = (start: { line: number; column: number } | undefined) =>
    where(file, block.line + (start?.line ?? 1) - 1, (start?.column ?? 0) + 1)
  try {
    const { warnings } = compile(block.code, { filename: `${file}:${block.line}.svelte`, generate: 'client' })
    return warnings.map((w) => `${at(w.start)}: svelte block: warning ${w.code}: ${w.message}`)
  } catch (e) {
    const error = e as { start?: { line: number; column: number }; code?: string; message?: string }
    return [`${at(error.start)}: svelte block: ${error.code ?? 'error'}: ${error.message ?? String(e)}`]
  }
}

/** Every problem of the checked blocks of `markdown`, each as `file:line:column: ...`; none when all is well. */
export function checkMarkdown(markdown: string, file: string): string[] {
  const found = blocks(markdown)
  return [...typeCheck(file, found), ...found.filter((b) => b.lang === 'svelte').flatMap((b) => compileSvelte(file, b))]
}

/** The problems of a markdown file of the repository, e.g. `README.md`. */
export function checkFile(relative: string): string[] {
  const text = ts.sys.readFile(`${ROOT}${relative}`)
  if (text === undefined) throw new Error(`cannot read ${relative}`)
  return checkMarkdown(text, relative)
}
