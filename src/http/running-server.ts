// What every started server role hands back: where it listens and how to stop it.
export interface RunningServer {
  url: string;
  /** stop accepting, finish in-flight work, close LevelDB */
  close(): Promise<void>;
}
