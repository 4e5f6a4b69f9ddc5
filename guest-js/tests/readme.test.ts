// The README's TypeScript snippets marked `<!-- snippet: typecheck -->` must compile against the bindings as
// they are: each is type-checked as a module of its own, importing `tauri-plugin-realtime-api` from `guest-js/`,
// with the project's compiler options.

import ts from 'typescript'
import { describe, expect, it } from 'vitest'

import readme from '../../README.md?raw'

const MARK = '<!-- snippet: typecheck -->'
const ROOT = new URL('../../', import.meta.url).pathname

/** The marked snippets: the ```ts block right after each mark. */
function snippets(): string[] {
  const found: string[] = []
  let at = readme.indexOf(MARK)
  while (at !== -1) {
    const block = /^\s*```ts\n([\s\S]*?)\n```/.exec(readme.slice(at + MARK.length))
    if (!block) throw new Error(`expected a \`\`\`ts block right after ${MARK} (README.md offset ${at})`)
    found.push(block[1]!)
    at = readme.indexOf(MARK, at + MARK.length)
  }
  return found
}

/** The compiler's complaints about `code` as a module of the package's user. */
function diagnostics(code: string): string[] {
  const file = `${ROOT}readme-snippet.ts`
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts', 'lib.dom.iterable.d.ts'],
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    baseUrl: ROOT,
    paths: { 'tauri-plugin-realtime-api': ['guest-js/index.ts'] },
  }
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, code, version) : getSourceFile(name, version, ...rest)
  host.fileExists = (name) => name === file || fileExists(name)
  host.readFile = (name) => (name === file ? code : readFile(name))
  const program = ts.createProgram([file], options, host)
  return ts
    .getPreEmitDiagnostics(program)
    .map((d) => `${d.file?.fileName ?? ''}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`)
}

describe('README snippets', () => {
  const all = snippets()

  it('has the marked snippets', () => {
    expect(all.length).toBeGreaterThan(0)
  })

  it.each(all.map((code, i) => [i + 1, code] as const))('snippet %i type-checks', (_, code) => {
    expect(diagnostics(code)).toEqual([])
  })

  it('fails a snippet that misuses the API', () => {
    const wrong = `import { connect } from 'tauri-plugin-realtime-api'\nawait connect({ url: 'https://h/', sendURL: 'x' })\n`
    const got = diagnostics(wrong)
    expect(got).toHaveLength(1)
    expect(got[0]).toContain("'sendURL' does not exist in type 'ConnectOptions'")
  })
})
