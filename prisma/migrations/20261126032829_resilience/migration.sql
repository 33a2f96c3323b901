-- CreateTable
CREATE TABLE "OAuthToken" (
    "tenantId" TEXT NOT NULL,
    "systemId" TEXT NOT NULL,
    "ciphertext" TEXT,
    "keyId" TEXT,
    "expiresAt" TIMESTAMPTZ(3),
    "refreshedAt" TIMESTAMPTZ(3),
    "failures" INTEGER NOT NULL DEFAULT 0,
    "cooldownUntil" TIMESTAMPTZ(3),
    "lastError" TEXT,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "OAuthToken_pkey" PRIMARY KEY ("tenantId","systemId")
);

-- CreateTable
CREATE TABLE "IdempotencyRecord" (
    "callerId" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "ciphertext" TEXT,
    "keyId" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "IdempotencyRecord_pkey" PRIMARY KEY ("callerId","key")
);

-- CreateIndex
CREATE INDEX "IdempotencyRecord_expiresAt_idx" ON "IdempotencyRecord"("expiresAt");

-- AddForeignKey
ALTER TABLE "OAuthToken" ADD CONSTRAINT "OAuthToken_tenantId_systemId_fkey" FOREIGN KEY ("tenantId", "systemId") REFERENCES "Binding"("tenantId", "systemId") ON DELETE CASCADE ON UPDATE CASCADE;

