// Realistic EdgeDevConfig documents (proto3 JSON) for tests: a container app on a local network
// instance, with its volume, content tree and datastore.
export const IDS = {
  config: "8d1d4a39-4d7a-4c36-9a4d-2f0f6f0b7a01",
  datastore: "5b0a6b52-7f36-4a55-8c3e-2a3f5c0d1e02",
  contentTree: "0c5e2b1a-3d4f-4a6b-9c8d-7e6f5a4b3c03",
  volume: "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a04",
  network: "2a3b4c5d-6e7f-4809-9a1b-2c3d4e5f6a05",
  app: "3b4c5d6e-7f80-4912-8a3b-4c5d6e7f8a06",
} as const;

export function sampleConfig(overrides: { appName?: string; memoryKiB?: number; version?: string } = {}) {
  return {
    id: { uuid: IDS.config, version: overrides.version ?? "1" },
    datastores: [{ id: IDS.datastore, dType: "DsContainerRegistry", fqdn: "docker://127.0.0.1:5000" }],
    contentInfo: [
      { uuid: IDS.contentTree, dsId: IDS.datastore, URL: "evebox/busybox:1", iformat: "CONTAINER", displayName: "busybox" },
    ],
    volumes: [
      {
        uuid: IDS.volume,
        origin: { type: "VCOT_DOWNLOAD", downloadContentTreeID: IDS.contentTree },
        displayName: "web-root",
        maxsizebytes: "104857600",
        generationCount: "1",
      },
    ],
    networkInstances: [
      {
        uuidandversion: { uuid: IDS.network, version: "1" },
        displayname: "plant-lan",
        instType: "ZnetInstLocal",
        activate: true,
        ip: { subnet: "198.51.100.0/24", gateway: "198.51.100.1", dhcpRange: { start: "198.51.100.10", end: "198.51.100.100" } },
      },
    ],
    apps: [
      {
        uuidandversion: { uuid: IDS.app, version: "1" },
        displayname: overrides.appName ?? "web",
        activate: true,
        fixedresources: { memory: overrides.memoryKiB ?? 65536, maxmem: overrides.memoryKiB ?? 65536, vcpus: 1 },
        volumeRefList: [{ uuid: IDS.volume, generationCount: "1" }],
        interfaces: [
          {
            name: "eth0",
            networkId: IDS.network,
            acls: [
              { matches: [{ type: "protocol", value: "tcp" }, { type: "lport", value: "8080" }], actions: [{ portmap: true, appPort: 80 }] },
              { matches: [{ type: "host", value: "updates.example.com" }] },
            ],
          },
        ],
        userData: Buffer.from("GREETING=hello\n").toString("base64"),
      },
    ],
  };
}
