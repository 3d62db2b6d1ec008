export interface LiveApi {
  get(path: string): Promise<any>;
  stream(path: string, signal: AbortSignal): Promise<Response>;
}
export declare function subscribeCampaign(api: LiveApi, id: number, onCampaign: (campaign: any, receivedAt: number) => void): () => void;
