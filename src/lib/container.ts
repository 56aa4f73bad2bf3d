/**
 * Tenable's objects name the container they belong to. Here every account and logo belongs
 * to the portal itself: one fixed id, the same in every installation.
 */
export const PORTAL_CONTAINER_UUID = '6f1d4c52-93a8-4e0b-b7d2-0c5e8a1f3b94'
