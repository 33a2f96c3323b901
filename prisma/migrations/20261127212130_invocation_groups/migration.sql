-- Invocation records move to one row per group (see InvocationGroup in schema.prisma). Each stored
-- record becomes a group of one with its seq, id and hashes unchanged, so the chain still verifies;
-- the view "Invocation" then shows one row per record, under the old table's name.

-- Hub processes of the version before write to "Invocation" under the chain's advisory lock: they
-- wait here until this migration commits, so no record they commit is left behind; after it, their
-- writes are refused (their records go to their error log): stop them before this upgrade.
SELECT pg_advisory_xact_lock(72470003);
LOCK TABLE "Invocation" IN ACCESS EXCLUSIVE MODE;
-- durationMs as JSON text that reads back as the same double, whatever the server's setting
SET LOCAL extra_float_digits = 3;

-- CreateTable
CREATE TABLE "InvocationGroup" (
    "seq" BIGSERIAL NOT NULL,
    "id" TEXT NOT NULL,
    "callerId" TEXT,
    "tenantId" TEXT NOT NULL,
    "systemId" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "records" TEXT NOT NULL,
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "InvocationGroup_pkey" PRIMARY KEY ("seq")
);

-- Move the records; createdAt as the hash covers it (ISO 8601, milliseconds, UTC)
INSERT INTO "InvocationGroup" ("seq", "id", "callerId", "tenantId", "systemId", "count", "records", "prevHash", "hash")
SELECT "seq", "id", "callerId", "tenantId", "systemId", 1,
       json_build_array(json_build_array("id", to_char("createdAt" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), "method"::text, "path", "status", "code", "durationMs", "requestId"))::text,
       "prevHash", "hash"
FROM "Invocation" ORDER BY "seq";
SELECT setval(pg_get_serial_sequence('"InvocationGroup"', 'seq'), (SELECT max("seq") FROM "InvocationGroup"));

-- DropTable
DROP TABLE "Invocation";

-- CreateIndex
CREATE UNIQUE INDEX "InvocationGroup_id_key" ON "InvocationGroup"("id");

-- CreateIndex
CREATE INDEX "InvocationGroup_tenantId_seq_idx" ON "InvocationGroup"("tenantId", "seq");

-- CreateIndex
CREATE INDEX "InvocationGroup_systemId_seq_idx" ON "InvocationGroup"("systemId", "seq");

-- CreateIndex
CREATE INDEX "InvocationGroup_callerId_seq_idx" ON "InvocationGroup"("callerId", "seq");

-- One row per record, for reading with SQL: "index" is the record's place in its group (oldest 0).
CREATE VIEW "Invocation" AS
SELECT g."seq", (r."ord" - 1)::int AS "index", r."item"->>0 AS "id", (r."item"->>1)::timestamptz(3) AS "createdAt",
       g."callerId", g."tenantId", g."systemId", (r."item"->>2)::"HttpMethod" AS "method", r."item"->>3 AS "path",
       (r."item"->>4)::int AS "status", r."item"->>5 AS "code", (r."item"->>6)::float8 AS "durationMs", r."item"->>7 AS "requestId"
FROM "InvocationGroup" g CROSS JOIN LATERAL jsonb_array_elements(g."records"::jsonb) WITH ORDINALITY AS r("item", "ord");
