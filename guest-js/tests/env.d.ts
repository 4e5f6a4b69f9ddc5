// Vite's `?raw` imports (used to read the Rust source the fixture must agree with).
declare module '*?raw' {
  const text: string
  export default text
}

// The little of Node's `http` that the tests use to serve real HTTP on 127.0.0.1 (the package has no
// @types/node).
declare module 'node:http' {
  interface IncomingMessage {
    method?: string
    url?: string
    headers: Record<string, string | string[] | undefined>
    on(event: 'data', listener: (chunk: Uint8Array) => void): this
    on(event: 'end', listener: () => void): this
  }
  interface ServerResponse {
    statusCode: number
    end(): void
  }
  interface Server {
    listen(port: number, host: string, listening: () => void): this
    close(closed: () => void): this
    address(): { port: number } | string | null
  }
  export function createServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Server
}

// The README, read by the test that type-checks its snippets.
declare module '*.md?raw' {
  const text: string
  export default text
}
