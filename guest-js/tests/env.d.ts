// Vite's `?raw` imports (used to read the Rust source the fixture must agree with).
declare module '*?raw' {
  const text: string
  export default text
}
