// noVNC ships JavaScript without types; AppDisplay.tsx types the little of its RFB class it uses.
declare module "@novnc/novnc";
