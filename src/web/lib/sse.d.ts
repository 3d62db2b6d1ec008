export declare function createSseParser(onEvent: (e: { event: string; data: string }) => void): (chunk: string) => void;
