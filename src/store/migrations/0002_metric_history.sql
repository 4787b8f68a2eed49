CREATE TABLE `metric_points` (
	`tier` integer NOT NULL,
	`object` text NOT NULL,
	`ts` integer NOT NULL,
	`cpu` integer,
	`memory_bytes` integer,
	`disk_read_bps` integer,
	`disk_write_bps` integer,
	`net_rx_bps` integer,
	`net_tx_bps` integer,
	`disk_used_bytes` integer,
	PRIMARY KEY(`tier`, `object`, `ts`)
) WITHOUT ROWID;
--> statement-breakpoint
DROP TABLE `metrics`;