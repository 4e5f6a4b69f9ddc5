// Types of build-iife.mjs, for the test that compares the committed api-iife.js with a fresh build.
export declare function buildIife(): Promise<string>
