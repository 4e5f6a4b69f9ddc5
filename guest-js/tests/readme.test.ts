// The README's examples are code that compiles: see readme.ts for the mechanism, checked here on small
// markdown texts whose problems sit on known lines.

import ts from 'typescript'
import { describe, expect, it } from 'vitest'

import { blocks, checkFile, checkMarkdown, ROOT } from './readme.js'

// Type-checking loads the bindings' sources and React's and Svelte's types: seconds, not milliseconds.
const SLOW = 60_000

describe('README.md', () => {
  it('has ts, tsx and svelte blocks', () => {
    const langs = blocks(ts.sys.readFile(`${ROOT}README.md`) ?? '').map((b) => b.lang)
    expect(new Set(langs)).toEqual(new Set(['ts', 'tsx', 'svelte']))
  })

  it('type-checks every ts and tsx block and compiles every svelte block', () => {
    expect(checkFile('README.md')).toEqual([])
  }, SLOW)
})

describe('the check', () => {
  const md = (...lines: string[]) => lines.join('\n')

  it('finds fenced blocks at any indentation, with the line of their first code line', () => {
    const text = md(
      ...['# T', '```ts', 'a', '```'],
      ...['- item', '  ```svelte', '  <p>x</p>', '  ```'],
      ...['```sh', 'ls', '```', '````tsx', 'b', '````'],
    )
    expect(blocks(text)).toEqual([
      { lang: 'ts', line: 3, code: 'a' },
      { lang: 'svelte', line: 7, code: '<p>x</p>' },
      { lang: 'tsx', line: 13, code: 'b' },
    ])
  })

  it('reports a type error with the markdown line and column, and passes what is right', () => {
    const text = md(
      'Intro',
      '',
      '```ts',
      "import { connect } from 'tauri-plugin-realtime-api'",
      "const conn = await connect({ url: 'wss://x.test' })",
      "conn.handle({ update: (m) => append(String(m.id)) })",
      '```',
      '',
      '```ts',
      "import { connect } from 'tauri-plugin-realtime-api'",
      "const conn = await connect({ url: 'wss://x.test' })",
      'conn.sendd(token)',
      '```',
    )
    const problems = checkMarkdown(text, 'DOC.md')
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^DOC\.md:12:6: ts block: Property 'sendd' does not exist on type 'Connection'/)
  }, SLOW)

  it('maps the subpaths to the sources and checks tsx', () => {
    const text = md(
      '```tsx',
      "import { useRealtime } from 'tauri-plugin-realtime-api/react'",
      'export function Live() {',
      "  const { state } = useRealtime({ url: 'wss://x.test' })",
      '  return <p title={state.state}>{state.nope}</p>',
      '}',
      '```',
      '```ts',
      "import { missing } from 'tauri-plugin-realtime-api'",
      '```',
    )
    const problems = checkMarkdown(text, 'DOC.md')
    expect(problems).toEqual([
      expect.stringMatching(/^DOC\.md:5:40: tsx block: Property 'nope' does not exist on type 'StateValue'/),
      expect.stringMatching(
        /^DOC\.md:9:10: ts block: Module '"tauri-plugin-realtime-api"' has no exported member 'missing'/,
      ),
    ])
  }, SLOW)

  it('reports a svelte compile error and a warning on their markdown lines', () => {
    const text = md(
      'x',
      '```svelte',
      '<script lang="ts">',
      '  let n: number = $state(0)',
      '</script>',
      '<button onclick={() => n++}>{n}</button>',
      '```',
      '```svelte',
      '<p>{#if x}</p>',
      '```',
      '```svelte',
      '<img src="a.png">',
      '```',
    )
    expect(checkMarkdown(text, 'DOC.md')).toEqual([
      expect.stringMatching(/^DOC\.md:9:\d+: svelte block: \w+: /),
      expect.stringMatching(/^DOC\.md:12:1: svelte block: warning a11y_missing_attribute: /),
    ])
  })
})
