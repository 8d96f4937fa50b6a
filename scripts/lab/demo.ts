export async function runDemo(_dir: string): Promise<number> {
  return 1;
}
