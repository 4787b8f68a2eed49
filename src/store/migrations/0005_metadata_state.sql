CREATE TABLE `app_custom_status` (
	`app` text PRIMARY KEY NOT NULL,
	`data` blob NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `patch_envelope_usage` (
	`app` text NOT NULL,
	`envelope` text NOT NULL,
	`version` text NOT NULL,
	`api_calls` integer NOT NULL,
	`downloads` integer NOT NULL,
	PRIMARY KEY(`app`, `envelope`, `version`)
);
