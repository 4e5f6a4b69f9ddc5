import { afterEach, describe, expect, it, vi } from 'vitest'

import { decodeBase64, encodeBase64 } from '../base64.js'
import { decodeBinary } from '../index.js'

// RFC 4648 section 10 test vectors (standard alphabet, padded), as the base64 crate's STANDARD engine writes.
const VECTORS: [string, string][] = [
  ['', ''],
  ['f', 'Zg=='],
  ['fo', 'Zm8='],
  ['foo', 'Zm9v'],
  ['foob', 'Zm9vYg=='],
  ['fooba', 'Zm9vYmE='],
  ['foobar', 'Zm9vYmFy'],
]
const ascii = (s: string) => new Uint8Array([...s].map((c) => c.charCodeAt(0)))

describe('base64', () => {
  it.each(VECTORS)('encodes %j as %j and back', (text, b64) => {
    expect(encodeBase64(ascii(text))).toBe(b64)
    expect([...decodeBase64(b64)]).toEqual([...ascii(text)])
  })

  it('uses the standard alphabet (+ and /), not the URL-safe one', () => {
    expect(encodeBase64(new Uint8Array([0xfb, 0xff, 0xbf]))).toBe('+/+/')
  })

  it('round-trips every byte value, and inputs larger than one encoding chunk', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i)
    expect([...decodeBase64(encodeBase64(all))]).toEqual([...all])
    const big = Uint8Array.from({ length: 200_003 }, (_, i) => (i * 7919) % 256)
    const b64 = encodeBase64(big)
    expect(b64.length).toBe(4 * Math.ceil(big.length / 3))
    const back = decodeBase64(b64)
    expect(back.length).toBe(big.length)
    expect(back.findIndex((v, i) => v !== big[i])).toBe(-1)
  })

  it('refuses malformed base64', () => {
    expect(() => decodeBase64('@@@@')).toThrow()
  })
})

describe('native base64', () => {
  const U8 = Uint8Array as unknown as { fromBase64?: unknown; prototype: { toBase64?: unknown } }
  afterEach(() => {
    delete U8.fromBase64
    delete U8.prototype.toBase64
  })

  it('uses Uint8Array.fromBase64 / toBase64 where the engine has them', () => {
    const fromBase64 = vi.fn(() => new Uint8Array([9]))
    const toBase64 = vi.fn(() => 'native')
    U8.fromBase64 = fromBase64
    U8.prototype.toBase64 = toBase64
    expect(encodeBase64(new Uint8Array([1]))).toBe('native')
    expect([...decodeBase64('AQ==')]).toEqual([9])
    expect(fromBase64).toHaveBeenCalledWith('AQ==')
    expect(toBase64).toHaveBeenCalledTimes(1)
  })
})

describe('decodeBinary', () => {
  it('decodes base64 data of a binary frame', () => {
    expect([...decodeBinary({ data: 'AAEC/w==', binary: true })]).toEqual([0, 1, 2, 255])
  })

  it('gives the UTF-8 bytes of a text frame', () => {
    expect([...decodeBinary({ data: 'é', binary: undefined })]).toEqual([0xc3, 0xa9])
    expect([...decodeBinary({ data: 'AAEC' })]).toEqual([65, 65, 69, 67])
  })
})
