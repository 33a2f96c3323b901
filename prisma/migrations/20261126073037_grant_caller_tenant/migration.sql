-- DropIndex
DROP INDEX "Grant_callerId_idx";

-- CreateIndex
CREATE INDEX "Grant_callerId_tenantId_idx" ON "Grant"("callerId", "tenantId");

