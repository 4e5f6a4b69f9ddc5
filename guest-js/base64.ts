// Binary messages cross the IPC as base64 (standard alphabet, padded), the same as the `base64` crate's STANDARD.

import type { MessageFrame, OnConnectData } from './types.js'

interface Base64Native {
  fromBase64?: (s: string) => Uint8Array
}

/** Bytes to base64. Uses `Uint8Array.prototype.toBase64` where the engine has it. */
export function encodeBase64(bytes: Uint8Array): string {
  const native = (bytes as Uint8Array & { toBase64?: () => string }).toBase64
  if (typeof native === 'function') return native.call(bytes)
  let binary = ''
  // Chunked so that `fromCharCode.apply` stays far below the engine's argument limit.
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[])
  }
  return btoa(binary)
}

/** Base64 to bytes. Uses `Uint8Array.fromBase64` where the engine has it. */
export function decodeBase64(text: string): Uint8Array {
  const native = (Uint8Array as unknown as Base64Native).fromBase64
  if (typeof native === 'function') return native(text)
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * The bytes of a message frame: base64-decoded when `binary` is true, else the UTF-8 bytes of the text.
 */
export function decodeBinary(frame: Pick<MessageFrame, 'data' | 'binary'>): Uint8Array {
  return frame.binary ? decodeBase64(frame.data) : new TextEncoder().encode(frame.data)
}

/** What `send()` accepts. */
export type SendData = string | ArrayBuffer | ArrayBufferView | Blob

/** A string or bytes as `toPayload` makes them; any other value as its JSON text. */
export async function toOnConnectPayload(data: OnConnectData): Promise<string | Uint8Array> {
  if (
    typeof data === 'string' ||
    data instanceof ArrayBuffer ||
    ArrayBuffer.isView(data) ||
    (typeof Blob !== 'undefined' && data instanceof Blob)
  ) {
    return toPayload(data)
  }
  let json: string | undefined
  try {
    json = JSON.stringify(data)
  } catch (e) {
    throw new TypeError(`setOnConnect() could not turn the data into JSON: ${String(e)}`)
  }
  if (json === undefined) {
    throw new TypeError('setOnConnect() takes a string, bytes, or a value JSON can express')
  }
  return json
}

/** A string stays text; everything else becomes bytes (a copy is not made where a view suffices). */
export async function toPayload(data: SendData): Promise<string | Uint8Array> {
  if (typeof data === 'string') return data
  if (data instanceof ArrayBuffer) return new Uint8Array(data)
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (typeof Blob !== 'undefined' && data instanceof Blob) return new Uint8Array(await data.arrayBuffer())
  throw new TypeError('send() takes a string, ArrayBuffer, typed array, DataView or Blob')
}
