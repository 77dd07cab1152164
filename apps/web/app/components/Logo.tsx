/** The app's mark: a signal arc. Decorative. */
export function Logo({ size = 28 }: { size?: number }) {
  return (
    <svg className="logo" width={size} height={size} viewBox="0 0 32 32" aria-hidden="true">
      <rect width="32" height="32" rx="8" fill="currentColor" />
      <path
        d="M9 22a13 13 0 0 1 13-13M9 16a7 7 0 0 1 7-7"
        fill="none"
        stroke="#fff"
        strokeWidth="3"
        strokeLinecap="round"
      />
      <circle cx="10" cy="22" r="2.5" fill="#fff" />
    </svg>
  );
}
