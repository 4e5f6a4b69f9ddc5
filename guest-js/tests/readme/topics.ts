import { connect, type MessageFrame } from '../../index.js'

// An app server of the usual kind: JSON messages with a `type`, topics to subscribe to, and an application
// heartbeat that it answers ({"type":"ping"} -> {"type":"pong"}), because it ignores protocol pings.
const feed = await connect({
  url: 'wss://api.example.com/live',
  heartbeat: { pingIntervalMs: 30_000, pongTimeoutMs: 10_000, message: '{"type":"ping"}', reply: '{"type":"pong"}' },
  // 1, 2, 4, 8, 16 s, then `failed` (call reconnect() to start again).
  reconnect: { initialDelayMs: 1000, multiplier: 2, maxDelayMs: 16_000, jitter: 0, maxRetries: 5 },
})

// Written right after every (re)connect, in this order, before anything sent while the link was down; while
// connected, at once too.
await feed.setOnConnect('auth', { type: 'auth', token: 'session-token' })
await feed.setOnConnect('topic:prices', { type: 'subscribe', topic: 'prices' })

// Message types dispatched through a handler map. The pongs never get here (see `deliverReplies`).
type Handler = (message: Record<string, unknown>) => void
const handlers: Record<string, Handler> = {
  price: (m) => console.log('price', m.symbol, m.value),
  news: (m) => console.log('news', m.title),
}
feed.on('message', (frame: MessageFrame) => {
  const message = JSON.parse(frame.data) as Record<string, unknown>
  const handler = typeof message.type === 'string' ? handlers[message.type] : undefined
  if (handler) handler(message)
  else console.warn('unhandled message type', message.type)
})

// Leaving a topic is the server's own message; removeOnConnect stops re-sending the subscription.
await feed.send(JSON.stringify({ type: 'unsubscribe', topic: 'prices' }))
await feed.removeOnConnect('topic:prices')
