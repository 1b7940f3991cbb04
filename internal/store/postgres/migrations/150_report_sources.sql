-- Where a report came from: "" for the live console (netconsole, an ingested log),
-- else a comma-separated list of the sources it arrived through after the reboot
-- (pstore, kdump) and "live" when it was also heard live (issue 15).
ALTER TABLE reports ADD COLUMN sources TEXT NOT NULL DEFAULT '';
