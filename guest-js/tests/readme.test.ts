// The README's snippets are the type-checked files of `tests/readme/` (tsc checks them with the rest of the
// bindings), with the package's name for the import: a snippet that drifts from the API fails here or in tsc.

import { describe, expect, it } from 'vitest'

import readme from '../../README.md?raw'
import topics from './readme/topics.ts?raw'

/** The first ```ts block after the heading `title`. */
function snippet(title: string): string {
  const at = readme.indexOf(`\n## ${title}\n`)
  if (at < 0) throw new Error(`expected the README section "${title}"`)
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))
  if (!m) throw new Error(`expected a ts block in the README section "${title}"`)
  return m[1]!
}

describe('README', () => {
  it('shows topics, message types and heartbeats as tests/readme/topics.ts has them', () => {
    const file = topics.replace("from '../../index.js'", "from 'tauri-plugin-realtime-api'")
    expect(snippet('Topics, message types and heartbeats')).toBe(file)
  })
})
